"""Models a worker runs itself: tiny CPU models for which the hop to the executor costs more than the model.

A model opts in with the config parameter ``tritium_run_in_workers: "true"`` (and only CPU instance groups).
The executor still loads it (it stays the one authority for the repository index, readiness, metadata,
configuration, statistics and metrics); every worker loads its own copy too, with the executor's configuration,
and serves that model's requests without the hop. What the copies record is forwarded to the executor: every
statistics update (so ``/v2/models/<m>/stats`` stays one answer) and every metrics event. Differences from
running in the executor, by nature: each worker has its own instances and, with dynamic batching, its own
queue (batches form per worker); ``nv_inference_pending_request_count`` counts the executor's queue only.

Whenever the executor's set of models changes, a worker routes every request to the executor until it has
matched its copies to the executor's list again, so an unloaded model is not served from a stale copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs

from tritium._base.events import Event, ModelLoaded, ModelUnloaded, QueueSizeChanged
from tritium._base.options import ServerOptions
from tritium._base.stats import ModelStatistics
from tritium._model_config.json_form import model_config_to_json
from tritium._model_config.parameters import bool_parameter
from tritium._plugins.host import PluginHost
from tritium._runtime.dataplane import DataPlane
from tritium._runtime.server import Server

_log = logging.getLogger("tritium.worker")

RUN_IN_WORKERS = "tritium_run_in_workers"
"""The model config parameter that asks for a copy of the model in every worker."""


def runs_in_workers(config: Any) -> bool:
    """Whether a (normalized) model config asks to run in the workers and can: CPU instances only, no
    ensemble (its steps are models of their own)."""
    try:
        wanted = bool_parameter(config, RUN_IN_WORKERS)
    except Exception:
        return False
    if not wanted or config.platform == "ensemble":
        return False
    return all(group.kind == group.KIND_CPU for group in config.instance_group)


def worker_models(service: DataPlane) -> dict[str, str]:
    """``{model: config JSON}`` of the executor's ready models that run in the workers (newest version's
    config; every ready version of it is loaded by the copy)."""
    wanted = {}
    for record in service.models.records():
        if record.serving:
            config = record.serving[max(record.serving)].config
            if runs_in_workers(config):
                wanted[record.name] = json.dumps(model_config_to_json(config))
    return wanted


@attrs.define(slots=True, eq=False)
class ForwardingStatistics(ModelStatistics):
    """Statistics of a worker's copy of a model: every update is applied at the executor too."""

    forward: Callable[[Any], None] = attrs.field(default=lambda message: None, kw_only=True)

    def record_execution(
        self, batch_size: int, request_count: int, input_ns: int, infer_ns: int, output_ns: int
    ) -> None:
        self.forward(("stat", self.name, self.version, "record_execution",
                      (batch_size, request_count, input_ns, infer_ns, output_ns), {}))

    def record_success(self, request_ns: int, queue_ns: int) -> None:
        self.forward(("stat", self.name, self.version, "record_success", (request_ns, queue_ns), {}))

    def record_failure(self, request_ns: int) -> None:
        self.forward(("stat", self.name, self.version, "record_failure", (request_ns,), {}))

    def record_response(self, index: int, *, infer_ns: int, output_ns: int, ok: bool, empty: bool) -> None:
        self.forward(("stat", self.name, self.version, "record_response", (index,),
                      {"infer_ns": infer_ns, "output_ns": output_ns, "ok": ok, "empty": empty}))


STAT_METHODS = frozenset({"record_execution", "record_success", "record_failure", "record_response"})

FORWARD_INTERVAL_S = 0.02
"""How long what a worker's copies record may wait before it leaves for the executor."""


class ForwardBuffer:
    """What the copies record, sent to the executor as one message per interval, not one per request.

    Forwarding each request's updates at once woke the executor once or twice per request; on 2 cores each
    wake-up took the processor from the request's own processes (measured with a Python model in the
    workers at concurrency 1: 6.8k req/s batched against 8.2k with forwarding off, and the per-request form
    well below both). Batched, the executor wakes at most once
    per :data:`FORWARD_INTERVAL_S`; the statistics and metrics of a copy lag by at most that much, as
    Triton's do (a Triton backend records a request's statistics after it has sent the response). Whatever
    is waiting leaves before the worker makes a synchronous call to the executor (statistics read through
    a worker count what it has answered) and when it closes.

    The buffer belongs to the worker's event loop (:meth:`bind`, or the first :meth:`add` made on a loop); a
    message added from another thread (a backend that records on its own thread) is handed to that loop.
    """

    def __init__(self, send: Callable[[list[Any]], None], interval: float = FORWARD_INTERVAL_S) -> None:
        self._send = send
        self._interval = interval
        self._pending: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make ``loop``, running on the calling thread, the buffer's loop before any message comes (so the
        first may come from another thread)."""
        self._loop = loop
        self._thread = threading.get_ident()

    def add(self, message: Any) -> None:
        # Runs for every statistics update: a thread id compare, not asyncio.get_running_loop() (which asks
        # the system for the process id on every call).
        if threading.get_ident() != self._thread:
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(self.add, message)
                return
            try:
                self.bind(asyncio.get_running_loop())
            except RuntimeError:
                raise RuntimeError("a ForwardBuffer's first message must be added on the worker's event loop") from None
        self._pending.append(message)
        if self._timer is None:
            assert self._loop is not None
            self._timer = self._loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Send what is waiting now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if pending:
            self._send(pending)


class LocalModels:
    """A worker's own copies of the models that run in the workers (see the module docstring)."""

    def __init__(self, options: ServerOptions, host: PluginHost, forward: Callable[[Any], None]) -> None:
        components = {
            key: ({**value, "enabled": False} if key.startswith("metrics_sink.") else value)
            for key, value in options.components.items()
        }
        local_options = attrs.evolve(
            options, model_control_mode="explicit", load_models=(), exit_on_error=False, components=components
        )
        self._forward = forward
        self.server = Server(
            local_options,
            host=host,
            serve_frontends=False,
            announce=False,
            statistics_factory=lambda name, version: ForwardingStatistics(name, str(version), forward=forward),
        )
        self.server.add_event_handler(self._forward_event)
        self._configs: dict[str, str] = {}
        self.active: frozenset[str] = frozenset()
        """The models requests may use the copy of right now (empty while matching the executor's list)."""
        self._matching: asyncio.Task[None] | None = None
        self._again = False

    @property
    def service(self) -> DataPlane:
        return self.server.service

    async def start(self) -> None:
        await self.server.start()

    def _forward_event(self, event: Event) -> None:
        # Loads and unloads of the copies are not the server's (the executor reports its own); its queue
        # gauge is the executor's.
        if not isinstance(event, (ModelLoaded, ModelUnloaded, QueueSizeChanged)):
            self._forward(("event", event))

    def changed(self, fetch: Callable[[], dict[str, str]]) -> None:
        """The executor's models changed: stop using the copies until they match ``fetch()`` again."""
        self.active = frozenset()
        if self._matching is not None and not self._matching.done():
            self._again = True
            return
        self._matching = asyncio.ensure_future(self._match(fetch))

    async def _match(self, fetch: Callable[[], dict[str, str]]) -> None:
        while True:
            self._again = False
            try:
                wanted = fetch()
            except Exception as exc:
                _log.debug("could not list the models that run in the workers: %r", exc)
                return
            for name in [n for n in self._configs if n not in wanted]:
                await self._unload(name)
            for name, config in wanted.items():
                if self._configs.get(name) != config:
                    await self._load(name, config)
            if not self._again:
                self.active = frozenset(n for n in self._configs if n in wanted)
                return

    async def _load(self, name: str, config: str) -> None:
        try:
            await self.service.load_model(name, config=config)
        except Exception as exc:
            _log.warning("model '%s' runs in the executor only: its copy in this worker failed to load: %s", name, exc)
            self._configs.pop(name, None)
            return
        self._configs[name] = config

    async def _unload(self, name: str) -> None:
        self._configs.pop(name, None)
        try:
            await self.service.unload_model(name)
        except Exception as exc:
            _log.debug("unloading the copy of '%s': %r", name, exc)

    async def stop(self, timeout: float) -> None:
        self.active = frozenset()
        if self._matching is not None:
            self._matching.cancel()
        await self.server.stop(timeout)
