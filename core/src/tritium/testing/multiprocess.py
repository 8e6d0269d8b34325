"""Conformance under ``tritium serve --workers N``: frontends and schedulers as the process model runs them.

Under ``--workers N`` a frontend runs in every worker process, each instance on a service whose models live in
the model executor (a ``RemoteService``: inference through shared memory and a control channel), all instances
bound to one port with ``SO_REUSEPORT``; a scheduler runs once, in the executor, and receives the requests of
every worker at once (a worker that goes away takes its waiting requests with it: they are cancelled).

The harness here runs the executor (a :class:`tritium.Server` without frontends plus the bridge workers connect
to) on its own thread and event loop, and the "workers" on the test's loop: the very objects and transport of
the process model, minus the process boundary, so a failure shows its traceback in the test::

    class TestMyFrontendWorkers(MultiProcessFrontendConformance):   # every FrontendConformance test, again
        ...same fixtures and methods as for FrontendConformance...

    class TestMySchedulerWorkers(MultiProcessSchedulerConformance):
        @pytest.fixture
        def scheduler_factory(self):
            return MyScheduler
        @pytest.fixture
        def scheduler_config(self):                 # an identity model with your scheduling section
            return identity_config("m", DataType.INT32, (4,), dynamic_batching=True)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pytest

from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium._base.options import ServerOptions
from tritium._base.specs import FrontendSpec, SchedulerSpec
from tritium._base.tensors import InferenceRequest, Tensor
from tritium._multiproc.executor import ExecutorBridge
from tritium._multiproc.remote_service import RemoteService
from tritium._multiproc.shm_table import SharedRegistry, create_table
from tritium._plugins.host import PluginHost
from tritium._runtime import builtin
from tritium._runtime.server import Server
from tritium.abc import Frontend, Scheduler, SchedulerContext
from tritium.config import ModelConfig
from tritium.hookspecs import hookimpl
from tritium.testing import fakes
from tritium.testing.frontend import FrontendClient, FrontendConformance, FrontendHarness, free_port

__all__ = ["ExecutorThread", "MultiProcessFrontendConformance", "MultiProcessSchedulerConformance"]

_TIMEOUT_S = 30.0
ARENA_SIZE = 8 << 20
T = TypeVar("T")


class ExecutorThread:
    """A model executor on its own thread and event loop; :meth:`worker` connects a worker's service to it."""

    def __init__(self, options: ServerOptions, host: PluginHost | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tritium-kit-")
        self.run_dir = Path(self._tmp.name)
        create_table(self.run_dir)
        self.options = options
        self._host = host
        self.server: Server | None = None
        self.bridge: ExecutorBridge | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kit-executor", daemon=True)
        self._workers: list[RemoteService] = []

    def run(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` on the executor's loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def start(self) -> None:
        self._thread.start()
        await asyncio.wrap_future(self.run(self._start()))

    async def _start(self) -> None:
        self.server = Server(self.options, host=self._host, serve_frontends=False)
        await self.server.start()
        self.bridge = ExecutorBridge(self.server.service, self.run_dir, ARENA_SIZE, self.server.emit)
        self.server.add_event_handler(self.bridge.on_event)
        await self.bridge.start()

    async def worker(self, index: int) -> RemoteService:
        """A worker's service connected to this executor (call on the test's loop)."""
        registry = SharedRegistry(allowed=self.options.allow_client_shm, table=self.run_dir / "shm-regions.json")
        service = RemoteService(self.run_dir, index, registry, ARENA_SIZE)
        await asyncio.wait_for(service.start(), _TIMEOUT_S)
        service.mark_live()
        self._workers.append(service)
        return service

    async def stop(self) -> None:
        for service in self._workers:
            await service.close()
            service.shared_memory.close()
        if self.server is not None:
            await asyncio.wrap_future(self.run(self._stop()))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_TIMEOUT_S)
        self._loop.close()
        self._tmp.cleanup()

    async def _stop(self) -> None:
        assert self.server is not None
        await self.server.stop(5.0)
        if self.bridge is not None:
            await self.bridge.stop()


class _Workers(Frontend):
    """The frontend instances of every worker, started and stopped together (what a test calls "the
    frontend")."""

    def __init__(self, frontends: Sequence[Frontend]) -> None:
        self.frontends = list(frontends)

    async def start(self) -> None:
        for frontend in self.frontends:
            await frontend.start()

    async def stop(self) -> None:
        await asyncio.gather(*(frontend.stop() for frontend in self.frontends))

    def describe(self) -> str:
        return " + ".join(f.describe() for f in self.frontends)


class MultiProcessFrontendConformance(FrontendConformance):
    """Every :class:`FrontendConformance` test, with the frontend as ``--workers N`` runs it: ``workers``
    instances on one port (through ``FrontendSpec.reuse_port_option``), each serving a worker's remote service
    whose models run in an executor. A frontend that names no ``reuse_port_option`` runs in one worker, as the
    server runs it."""

    workers: ClassVar[int] = 2

    @asynccontextmanager
    async def serving(self, spec: FrontendSpec, repository: Path) -> AsyncIterator[FrontendHarness]:
        options = ServerOptions(model_repositories=(str(repository),), exit_timeout_secs=5.0)
        host = PluginHost(extra_plugins=[("conformance_fakes", fakes.fake_plugin)])
        executor = ExecutorThread(options, host)
        await executor.start()
        group: _Workers | None = None
        client: FrontendClient | None = None
        try:
            port = free_port()
            count = self.workers if spec.reuse_port_option else 1
            frontends = []
            for index in range(count):
                service = await executor.worker(index)
                resolved = {o.name: o.default for o in spec.options}
                resolved.update(self.frontend_options(port))
                if spec.reuse_port_option:
                    resolved[spec.reuse_port_option] = True
                frontends.append(spec.factory(service, resolved))
            group = _Workers(frontends)
            await asyncio.wait_for(group.start(), _TIMEOUT_S)
            client = self.make_client(group.frontends[0], port)
            assert executor.server is not None
            yield FrontendHarness(executor.server, group, client, port)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            if group is not None:
                await asyncio.wait_for(group.stop(), _TIMEOUT_S)
            await executor.stop()


# ---------------------------------------------------------------------------------------- schedulers
class _SchedulerPlugin:
    """Registers the scheduler under test for its config section (the only scheduler for it)."""

    def __init__(self, spec: SchedulerSpec) -> None:
        self.spec = spec

    @hookimpl
    def tritium_register_schedulers(self) -> list[SchedulerSpec]:
        return [self.spec]


def _section(config: ModelConfig) -> str:
    return config.WhichOneof("scheduling_choice") or ""


class MultiProcessSchedulerConformance:
    """Tests of a :class:`tritium.Scheduler` fed by several workers at once, in a real executor.

    Fixtures to provide: ``scheduler_factory`` and optionally ``scheduler_config`` (an identity-model config
    with your scheduling section; default INT32 ``[4]``, ``max_batch_size`` 8, no section),
    ``scheduler_decoupled`` (whether the scheduler serves decoupled models). The model is served by the
    kernel's fake identity backend through a plugin host holding only the built-in components, the fake
    backend and your scheduler.
    """

    workers: ClassVar[int] = 2
    request_count: ClassVar[int] = 24

    @pytest.fixture
    def scheduler_factory(self) -> Callable[[SchedulerContext], Scheduler]:
        pytest.fail(f"{type(self).__name__} must provide the fixture 'scheduler_factory'")

    @pytest.fixture
    def scheduler_config(self) -> ModelConfig:
        return fakes.identity_config("conformance", DataType.INT32, (4,), max_batch_size=8)

    @pytest.fixture
    def scheduler_decoupled(self) -> bool:
        return False

    @asynccontextmanager
    async def workers_on(
        self,
        factory: Callable[[SchedulerContext], Scheduler],
        config: ModelConfig,
        decoupled: bool,
        repository: Path,
        *,
        delay_ms: int = 0,
    ) -> AsyncIterator[tuple[ExecutorThread, list[RemoteService]]]:
        """An executor serving ``config`` (optionally slowed to ``delay_ms`` per execution) under the
        scheduler, and ``workers`` connected worker services."""
        slowed = ModelConfig()
        slowed.CopyFrom(config)
        if delay_ms:
            slowed.parameters["execute_delay_ms"].string_value = str(delay_ms)
        fakes.write_model(repository, slowed, files={fakes.IDENTITY_MODEL_FILE: b""})
        section = _section(config)
        spec = SchedulerSpec(name="under_test", config_section=section, factory=factory, decoupled=decoupled)
        plugins: list[tuple[str, object]] = [
            ("conformance_fakes", fakes.fake_plugin),
            ("conformance_scheduler", _SchedulerPlugin(spec)),
        ]
        if section:  # the built-in default scheduler serves the other models; without a section, this one does
            plugins.insert(0, ("builtin", builtin))
        host = PluginHost(extra_plugins=plugins, discover=False)
        options = ServerOptions(model_repositories=(str(repository),), exit_timeout_secs=5.0)
        executor = ExecutorThread(options, host)
        await executor.start()
        try:
            services = [await executor.worker(index) for index in range(self.workers)]
            yield executor, services
        finally:
            await executor.stop()

    @staticmethod
    def request(config: ModelConfig, value: int) -> InferenceRequest:
        shape = [1, *config.input[0].dims] if config.max_batch_size else list(config.input[0].dims)
        data = np.full(shape, value, dtype=np.int32)
        inputs = {t.name: Tensor(t.name, DataType.INT32, data) for t in config.input}
        return InferenceRequest(model_name=config.name, inputs=inputs, id=str(value))

    @pytest.mark.asyncio
    async def test_requests_from_every_worker_get_their_own_results(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_decoupled: bool,
        tmp_path: Path,
    ) -> None:
        async with self.workers_on(scheduler_factory, scheduler_config, scheduler_decoupled, tmp_path) as (
            executor,
            services,
        ):
            calls = [
                services[i % len(services)].infer(self.request(scheduler_config, i)) for i in range(self.request_count)
            ]
            responses = await asyncio.wait_for(asyncio.gather(*calls), _TIMEOUT_S)
            for i, response in enumerate(responses):
                assert response.id == str(i)
                for output in response.outputs:
                    assert output.data.reshape(-1).tolist() == [i] * output.data.size, f"request {i}"
            assert executor.server is not None
            stats = executor.server.service.statistics(scheduler_config.name)["model_stats"][0]
            assert stats["inference_stats"]["success"]["count"] == self.request_count

    @pytest.mark.asyncio
    async def test_a_worker_that_goes_away_takes_its_waiting_requests_with_it(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_decoupled: bool,
        tmp_path: Path,
    ) -> None:
        """A slow model with one instance busy; worker 0 queues requests and its connection drops: they are
        cancelled (never executed), worker 1's queued requests are all answered."""
        config = ModelConfig()
        config.CopyFrom(scheduler_config)
        del config.instance_group[:]
        group = config.instance_group.add()
        group.count = 1
        group.kind = group.KIND_CPU
        async with self.workers_on(scheduler_factory, config, scheduler_decoupled, tmp_path, delay_ms=300) as (
            executor,
            (gone, staying),
        ):
            assert executor.server is not None
            service = executor.server.service
            first = asyncio.ensure_future(staying.infer(self.request(config, 100)))
            deadline = time.monotonic() + _TIMEOUT_S
            scheduler = service.models.runtime(config.name).scheduler
            settled = 0
            while settled < 2:
                # Executing, not queued: a batching scheduler may hold it for its queue delay, and the requests
                # sent next would join its batch. Seen twice, 5 ms apart (this reads another thread's state).
                assert time.monotonic() < deadline, "the first request never started executing"
                settled = settled + 1 if service.in_flight >= 1 and scheduler.pending_count() == 0 else 0
                await asyncio.sleep(0.005)
            doomed = [asyncio.ensure_future(gone.infer(self.request(config, i))) for i in range(4)]
            kept = [asyncio.ensure_future(staying.infer(self.request(config, 200 + i))) for i in range(2)]
            while service.in_flight < 7:
                assert time.monotonic() < deadline, "the queued requests never reached the executor"
                await asyncio.sleep(0.005)
            conn = gone._conn
            assert conn is not None
            conn.channel.abort()
            for task in doomed:
                with pytest.raises(TritiumError):
                    await asyncio.wait_for(task, _TIMEOUT_S)
            for value, task in zip((100, 200, 201), (first, *kept), strict=True):
                response = await asyncio.wait_for(task, _TIMEOUT_S)
                assert response.outputs[0].data.reshape(-1)[0] == value
            stats = service.statistics(config.name)["model_stats"][0]
            assert stats["inference_stats"]["success"]["count"] == 3
            executed = stats["inference_count"]
            assert executed == 3, f"the gone worker's waiting requests were executed ({executed} inferences)"
            assert service.in_flight == 0
