"""The server: assembles plugins, models, frontends and metrics sinks into one running Tritium.

Usable in-process without any frontend::

    server = tritium.Server(tritium.ServerOptions(model_repositories=("models",)))
    await server.start()
    response = await server.service.infer(request)
    await server.stop()

``tritium serve`` runs :meth:`Server.serve`, which adds signal handling and the graceful shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tritium._base.errors import TritiumError
from tritium._base.events import Event, EventBus
from tritium._base.options import ServerOptions
from tritium._base.stats import ModelStatistics
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._plugins.host import PluginHost, plugin_reference
from tritium._runtime.dataplane import DataPlane
from tritium._runtime.heap import freeze_long_lived
from tritium._runtime.lifecycle import ModelManager
from tritium._runtime.settings import LogSettings
from tritium.abc import Frontend, MetricsSink

_log = logging.getLogger("tritium.server")

TRITON_COMPAT_VERSION = "2.73.0"
SHUTDOWN_MARGIN_SECS = 1.0
"""After the exit timeout: how long answers to aborted requests and the models' unloading may take before
the shutdown stops waiting (executions still running then are abandoned: the process exits)."""
EXIT_TIMEOUT_MESSAGE = "Server is stopping: the exit timeout passed before the request was executed"


class StartupError(Exception):
    """The server could not start (a model failed to load under ``--exit-on-error``, a port in use, ...)."""


def component_options(specs_options: Sequence[Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A component's options: declared defaults overridden by what the configuration gave."""
    resolved = {opt.name: opt.default for opt in specs_options}
    resolved.update({k: v for k, v in given.items() if k != "enabled"})
    return resolved


def format_model_table(index: Sequence[Mapping[str, Any]]) -> str:
    """The model/version/status table Triton prints at startup."""
    rows = [("Model", "Version", "Status")]
    for entry in index:
        status = entry.get("state", "") or "UNAVAILABLE: not loaded"
        if entry.get("state") == "UNAVAILABLE" and entry.get("reason"):
            status = f"UNAVAILABLE: {entry['reason']}"
        rows.append((str(entry["name"]), str(entry.get("version", "")), status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule]
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            lines.append(rule)
    lines.append(rule)
    return "\n".join(lines)


def create_components(
    kind: str,
    specs: Mapping[str, Any],
    options: ServerOptions,
    service: Any,
    adjust: Callable[[Any, dict[str, Any]], dict[str, Any] | None] | None = None,
) -> list[Any]:
    """The enabled components of one kind (``frontend``, ``metrics_sink``), created on ``service`` with their
    resolved options; ``adjust(spec, options)`` may change a component's options, or return None to skip it."""
    created = []
    for name, spec in specs.items():
        given = options.components.get(f"{kind}.{name}", {})
        if not given.get("enabled", False):
            continue
        resolved: dict[str, Any] | None = component_options(spec.options, given)
        if adjust is not None and resolved is not None:
            resolved = adjust(spec, resolved)
        if resolved is not None:
            created.append(spec.factory(service, resolved))
    return created


class Server:
    """A Tritium server. ``plugins`` adds ``(name, module-or-object)`` plugins besides the entry points;
    ``host`` hands over a plugin host that is already loaded (the CLI loads one to build its parser);
    ``serve_frontends`` False starts no frontend (the executor process of ``--workers N``, whose frontends run
    in the worker processes); ``statistics_factory(name, version)`` makes each model version's statistics
    (the default: plain :class:`ModelStatistics`); ``announce`` False skips the startup model table (a worker's
    copies of models, whose table would show what the worker has not loaded)."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        plugins: Sequence[tuple[str, object]] = (),
        host: PluginHost | None = None,
        serve_frontends: bool = True,
        statistics_factory: Callable[[str, int], ModelStatistics] | None = None,
        announce: bool = True,
    ) -> None:
        self.options = options or ServerOptions()
        self.serve_frontends = serve_frontends
        self.announce = announce
        self._statistics_factory = statistics_factory or (lambda name, version: ModelStatistics(name, str(version)))
        if host is None:
            extra = [*plugins, *(plugin_reference(m) for m in self.options.extra_plugins)]
            host = PluginHost(disabled=self.options.disabled_plugins, extra_plugins=extra)
        self.host = host
        self._bus = EventBus(on_error=self._sink_failed)
        self._frontends: list[Frontend] = []
        self._running: list[Frontend] = []
        self._sinks: list[MetricsSink] = []
        self._models: ModelManager | None = None
        self._service: DataPlane | None = None
        self._started = False
        self._stopped = False
        self._extra_handlers: tuple[Callable[[Event], None], ...] = ()

    # ------------------------------------------------------------------------------------- accessors
    @property
    def service(self) -> DataPlane:
        """The data plane (a :class:`tritium.InferenceService`); available once started."""
        if self._service is None:
            raise RuntimeError("the server is not started")
        return self._service

    @property
    def frontends(self) -> Sequence[Frontend]:
        return tuple(self._frontends)

    @property
    def metrics_sinks(self) -> Sequence[MetricsSink]:
        return tuple(self._sinks)

    # ---------------------------------------------------------------------------------------- start
    async def start(self) -> None:
        """Load plugins and models, then start metrics sinks and frontends.

        Raises :class:`StartupError` when a model fails to load and ``exit_on_error`` is set, and
        :class:`tritium.PluginError` when a plugin cannot be loaded.
        """
        if self._started:
            return
        self._started = True
        options = self.options
        if not self.host.loaded:
            self.host.load()
        log_settings = LogSettings(
            log_file=options.log_file, log_info=options.log_info, log_warning=options.log_warning,
            log_error=options.log_error, log_verbose_level=options.log_verbose, log_format=options.log_format,
        )
        self._models = ModelManager(options, self.host, self._bus.emit, self._statistics_factory)
        service = DataPlane(options, self.host, self._models, TRITON_COMPAT_VERSION, log_settings)
        self._service = service
        self._sinks = self._create_components("metrics_sink", self.host.metrics_sinks)
        self._bus.handlers = (*(sink.handle for sink in self._sinks), *self._extra_handlers)
        # Created (and so their options checked) before the models load; started only after.
        if self.serve_frontends:
            self._frontends = self._create_components("frontend", self.host.frontends)
        try:
            for sink in self._sinks:
                await sink.start()
            failed = await self._models.load_initial()
            if failed and options.exit_on_error:
                raise StartupError(
                    "failed to load all models: " + ", ".join(failed) + " (see the log for each reason; "
                    "--exit-on-error=false serves the others)"
                )
            if self.announce:
                _log.info("model status:\n%s", format_model_table(service.repository_index()))
            service.mark_live()
            for frontend in self._frontends:
                await frontend.start()
                self._running.append(frontend)
                _log.info("started %s", frontend.describe())
            self._models.start_polling()
        except BaseException:
            await self._shutdown(timeout=0)
            raise

    def _create_components(self, kind: str, specs: Mapping[str, Any]) -> list[Any]:
        return create_components(kind, specs, self.options, self._service)

    def emit(self, event: Event) -> None:
        """Send ``event`` to the metrics sinks as if the kernel had emitted it (events of models that run in the
        worker processes reach the executor's sinks this way)."""
        self._bus.emit(event)

    def add_event_handler(self, handler: Callable[[Event], None]) -> None:
        """Also send every kernel event to ``handler`` (besides the metrics sinks); must be cheap."""
        self._extra_handlers = (*self._extra_handlers, handler)
        if self._started:
            self._bus.handlers = (*self._bus.handlers, handler)

    def _sink_failed(self, handler: Any, exc: BaseException) -> None:
        _log.warning("metrics sink %r failed on an event: %s", handler, exc)

    # ----------------------------------------------------------------------------------------- stop
    async def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, finish requests in flight (up to ``timeout``, default ``exit_timeout_secs``),
        unload the models and stop. Returns False when requests were still in flight at the timeout."""
        if not self._started or self._stopped:
            return True
        return await self._shutdown(self.options.exit_timeout_secs if timeout is None else timeout)

    async def _shutdown(self, timeout: float) -> bool:
        """One deadline for everything: requests in flight may finish until ``timeout`` has passed; then
        those not executing yet are answered with an error, executions in progress get
        :data:`SHUTDOWN_MARGIN_SECS` more, and the rest of the shutdown does not wait for them."""
        self._stopped = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        service = self._service
        clean = True
        if service is not None:
            service.begin_shutdown()
        if self._models is not None:
            await self._models.stop_polling()
        # Drain: the listeners stay open, so a client (or a load balancer still sending) gets 503 /
        # UNAVAILABLE from the data plane and a not-ready answer from health checks instead of a refused
        # connection, until the requests in flight are done or the exit timeout passes.
        if service is not None and service.in_flight:
            _log.info("waiting for %d request(s) in flight", service.in_flight)
            if not await service.wait_idle(max(deadline - loop.time(), 0.0)):
                clean = False
                _log.warning(
                    "exit timeout: %d request(s) still in flight; answering those not executing yet with an error",
                    service.in_flight,
                )
                if self._models is not None:
                    self._models.abort_pending(TritiumError.unavailable(EXIT_TIMEOUT_MESSAGE))
        margin_deadline = max(deadline, loop.time()) + SHUTDOWN_MARGIN_SECS
        # Then the frontends stop accepting and answer what they still hold (aborted requests included).
        stops = [asyncio.ensure_future(f.stop()) for f in self._running]
        if stops:
            _, pending = await asyncio.wait(stops, timeout=max(margin_deadline - loop.time(), 0.0))
            for frontend, stop in zip(self._running, stops, strict=True):
                if stop in pending:
                    clean = False
                    stop.cancel()
                    _log.warning("stopping %s: still answering requests at the exit timeout", frontend.describe())
                elif stop.exception() is not None:
                    clean = False
                    _log.warning("stopping %s: %r", frontend.describe(), stop.exception())
        if self._models is not None and not await self._models.unload_all(max(margin_deadline - loop.time(), 0.0)):
            clean = False
        for sink in self._sinks:
            try:
                await sink.stop()
            except Exception as exc:
                _log.warning("stopping metrics sink: %r", exc)
        if service is not None:
            service.shared_memory.close()
        return clean

    async def serve(self) -> int:
        """Start, serve until SIGINT/SIGTERM, then stop gracefully. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await self.start()
        freeze_long_lived()
        loaded = sum(1 for r in self._models.records() if r.serving) if self._models else 0
        _log.info("server is ready (%d model(s) loaded)", loaded)
        try:
            await stop.wait()
        finally:
            _log.info("signal received: stopping (exit timeout %.0fs)", self.options.exit_timeout_secs)
            await self.stop()
        return 0

    # ------------------------------------------------------------------------------ convenience API
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Run one inference request in-process."""
        return await self.service.infer(request)

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        """Load or reload a model (explicit control mode)."""
        await self.service.load_model(name, config=config, files=files)

    async def unload_model(self, name: str) -> None:
        """Unload a model (explicit control mode)."""
        await self.service.unload_model(name)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()



