"""``SchedulerConformance``: the tests every scheduler inherits.

The tests run the scheduler against a real :class:`tritium.InstancePool` of identity instances (output *i*
= input *i*, see :mod:`tritium.testing.fakes`), wrapped to record what they execute and to hold executions
at a gate, so that queueing, cancellation and draining can be observed deterministically::

    class TestMyScheduler(SchedulerConformance):
        @pytest.fixture
        def scheduler_factory(self):
            return MyScheduler                      # SchedulerSpec.factory: SchedulerContext -> Scheduler

        @pytest.fixture
        def scheduler_config(self):                 # an identity model with your scheduling section
            return identity_config("m", DataType.INT32, (4,), max_batch_size=8, dynamic_batching=True)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest

from tritium._base.errors import TritiumError
from tritium._base.events import Event, QueueSizeChanged
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._runtime.instances import InstancePool
from tritium.abc import Batch, ModelInstance, Scheduler, SchedulerContext
from tritium.testing._modelconfig import ModelConfig, config_datatype
from tritium.testing.builders import build_request
from tritium.testing.fakes import IdentityInstance, RecordingInstance, identity_config

__all__ = ["SchedulerConformance", "SchedulerHarness"]

_TIMEOUT_S = 30.0
FAIL_PARAMETER = "conformance_fail"
"""Request parameter that makes the fake instances raise (to test how a scheduler reports model errors)."""


class _FailingIdentity(IdentityInstance):
    """Identity, except that a batch holding a request with parameter ``conformance_fail`` fails."""

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        if any(r.parameters.get(FAIL_PARAMETER) for r in batch.requests):
            raise TritiumError.invalid_arg("conformance: this request fails on purpose")
        return super().execute(batch)


@attrs.define
class SchedulerHarness:
    """A scheduler under test, its pool, its recorded instances, the events it emitted, and the gate.

    ``gate`` is set (open) unless the harness was made with ``gated=True``; open it with
    ``harness.gate.set()``.
    """

    scheduler: Scheduler
    pool: InstancePool
    instances: list[RecordingInstance]
    events: list[Event]
    gate: threading.Event
    config: ModelConfig

    def executed(self) -> list[InferenceRequest]:
        """Every request any instance executed, in execution order per instance."""
        return [r for inst in self.instances for r in inst.executed_requests()]

    async def wait_busy(self, count: int = 1) -> None:
        """Wait until ``count`` instances have started executing."""
        deadline = time.monotonic() + _TIMEOUT_S
        while sum(inst.started.is_set() for inst in self.instances) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} instances started executing")
            await asyncio.sleep(0.002)


def _expected(config: ModelConfig, request: InferenceRequest) -> dict[str, np.ndarray[Any, Any]]:
    """What an identity model answers to ``request`` when executed on its own."""
    inputs = [t.name for t in config.input]
    wanted = {o.name for o in request.requested_outputs}
    out = {}
    for i, output in enumerate(config.output):
        if (wanted and output.name not in wanted) or i >= len(inputs) or inputs[i] not in request.inputs:
            continue
        array = request.inputs[inputs[i]].data
        out[output.name] = array.astype(config_datatype(output).numpy_dtype)
    return out


class SchedulerConformance:
    """Inherited tests of a :class:`tritium.Scheduler`.

    Fixtures to provide: ``scheduler_factory`` (``SchedulerContext -> Scheduler``, i.e. your
    ``SchedulerSpec.factory``) and optionally ``scheduler_config`` (an identity-model config with your
    scheduling section; default: INT32 ``[4]``, ``max_batch_size`` 8, no section) and
    ``scheduler_options`` (``SchedulerContext.options``). Class attributes: ``instance_count`` (instances in
    the pool for the throughput test) and ``reports_pending`` (whether ``pending_count`` counts queued
    requests; Triton's ``nv_inference_pending_request_count`` does).
    """

    instance_count: ClassVar[int] = 2
    reports_pending: ClassVar[bool] = True
    request_count: ClassVar[int] = 24

    @pytest.fixture
    def scheduler_factory(self) -> Callable[[SchedulerContext], Scheduler]:
        """The factory of the scheduler under test."""
        pytest.fail(f"{type(self).__name__} must provide the fixture 'scheduler_factory'")

    @pytest.fixture
    def scheduler_config(self) -> ModelConfig:
        """An identity-model config the scheduler serves (inputs INPUTn, outputs OUTPUTn)."""
        from tritium._base.datatypes import DataType

        return identity_config("conformance", DataType.INT32, (4,), max_batch_size=8, inputs=2)

    @pytest.fixture
    def scheduler_options(self) -> Mapping[str, Any]:
        """``SchedulerContext.options`` for the scheduler under test."""
        return {}

    # ----------------------------------------------------------------------------------- harness
    @asynccontextmanager
    async def running(
        self,
        factory: Callable[[SchedulerContext], Scheduler],
        config: ModelConfig,
        options: Mapping[str, Any] | None = None,
        *,
        instances: int = 1,
        gated: bool = False,
        failing: bool = False,
    ) -> AsyncIterator[SchedulerHarness]:
        """A scheduler over a real pool of ``instances`` recorded identity instances; closes both."""
        gate = threading.Event()
        if not gated:
            gate.set()
        inner: Callable[[ModelConfig], ModelInstance] = _FailingIdentity if failing else IdentityInstance
        recorded = [RecordingInstance(inner(config), gate=gate) for _ in range(instances)]
        events: list[Event] = []
        pool = InstancePool.from_config(config, recorded, model_version=1, emit=events.append)
        context = SchedulerContext(
            model_name=config.name,
            model_version=1,
            config=config,
            pool=pool,
            clock_ns=time.monotonic_ns,
            emit=events.append,
            options=dict(options or {}),
        )
        scheduler = factory(context)
        harness = SchedulerHarness(scheduler, pool, recorded, events, gate, config)
        try:
            yield harness
        finally:
            gate.set()
            await asyncio.wait_for(scheduler.close(), _TIMEOUT_S)
            await asyncio.to_thread(pool.close)

    def prepare_request(self, request: InferenceRequest, index: int) -> InferenceRequest:
        """Adjust each generated request before it is scheduled; override for schedulers that need more
        than a valid request (e.g. a sequence batcher: a sequence id with START and END flags)."""
        return request

    def make_requests(self, config: ModelConfig, count: int, **kwargs: Any) -> list[InferenceRequest]:
        """``count`` distinct requests valid for ``config`` (batch sizes 1..3 for batching models),
        stamped with an arrival time as the data plane stamps them, passed through
        :meth:`prepare_request`."""
        requests = []
        for i in range(count):
            size = 1 + i % min(3, config.max_batch_size) if config.max_batch_size > 0 else 0
            request = build_request(
                config,
                batch_size=size,
                rng=np.random.default_rng(i),
                request_id=f"req-{i}",
                **kwargs,
            )
            request.arrival_ns = time.monotonic_ns()
            requests.append(self.prepare_request(request, i))
        return requests

    @staticmethod
    def assert_identity(config: ModelConfig, request: InferenceRequest, response: InferenceResponse) -> None:
        """``response`` is the unbatched identity result of ``request``."""
        assert isinstance(response, InferenceResponse), f"infer returned {type(response).__name__}"
        assert response.id == request.id, f"response id {response.id!r} for request {request.id!r}"
        got = {t.name: t.data for t in response.outputs}
        expected = _expected(config, request)
        assert sorted(got) == sorted(expected), f"outputs {sorted(got)} for request {request.id}"
        for name, array in expected.items():
            assert got[name].shape == array.shape, f"{request.id}: output {name!r} shape {got[name].shape}"
            assert np.array_equal(got[name], array), f"{request.id}: output {name!r} is another request's"

    # ------------------------------------------------------------------------------------- tests
    @pytest.mark.asyncio
    async def test_every_request_gets_its_own_unbatched_result(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        requests = self.make_requests(scheduler_config, self.request_count)
        async with self.running(
            scheduler_factory, scheduler_config, scheduler_options, instances=self.instance_count
        ) as h:
            responses = await asyncio.wait_for(asyncio.gather(*(h.scheduler.infer(r) for r in requests)), _TIMEOUT_S)
            executed = h.executed()
        for request, response in zip(requests, responses, strict=True):
            self.assert_identity(scheduler_config, request, response)
        counts = {id(r): 0 for r in requests}
        for request in executed:
            counts[id(request)] += 1
        assert set(counts.values()) == {1}, "every request must be executed exactly once"

    @pytest.mark.asyncio
    async def test_requested_outputs_are_respected(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        first = scheduler_config.output[0].name
        requests = self.make_requests(scheduler_config, 6, requested_outputs=[first])
        requests += self.make_requests(scheduler_config, 6)
        async with self.running(
            scheduler_factory, scheduler_config, scheduler_options, instances=self.instance_count
        ) as h:
            responses = await asyncio.wait_for(asyncio.gather(*(h.scheduler.infer(r) for r in requests)), _TIMEOUT_S)
        for request, response in zip(requests, responses, strict=True):
            self.assert_identity(scheduler_config, request, response)

    @pytest.mark.asyncio
    async def test_cancelled_waiting_request_is_never_executed(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        first, waiting, after = self.make_requests(scheduler_config, 3)
        async with self.running(scheduler_factory, scheduler_config, scheduler_options, gated=True) as h:
            running = asyncio.ensure_future(h.scheduler.infer(first))
            await h.wait_busy()
            queued = asyncio.ensure_future(h.scheduler.infer(waiting))
            await asyncio.sleep(0.05)
            assert not queued.done(), "a request finished while the only instance was busy"
            queued.cancel()
            with pytest.raises((asyncio.CancelledError, TritiumError)):
                await asyncio.wait_for(queued, _TIMEOUT_S)
            h.gate.set()
            self.assert_identity(scheduler_config, first, await asyncio.wait_for(running, _TIMEOUT_S))
            response = await asyncio.wait_for(h.scheduler.infer(after), _TIMEOUT_S)
            self.assert_identity(scheduler_config, after, response)
            executed = h.executed()
            pending = h.scheduler.pending_count()
        assert all(r is not waiting for r in executed), "a cancelled request was executed"
        assert pending == 0, f"pending_count() is {pending} after every request finished"

    @pytest.mark.asyncio
    async def test_close_drains_queued_requests(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        requests = self.make_requests(scheduler_config, 6)
        async with self.running(scheduler_factory, scheduler_config, scheduler_options, gated=True) as h:
            tasks = [asyncio.ensure_future(h.scheduler.infer(r)) for r in requests]
            await h.wait_busy()
            await asyncio.sleep(0.02)
            closing = asyncio.ensure_future(h.scheduler.close())
            await asyncio.sleep(0.02)
            h.gate.set()
            responses = await asyncio.wait_for(asyncio.gather(*tasks), _TIMEOUT_S)
            await asyncio.wait_for(closing, _TIMEOUT_S)
        for request, response in zip(requests, responses, strict=True):
            self.assert_identity(scheduler_config, request, response)

    @pytest.mark.asyncio
    async def test_pending_count_is_never_negative_and_returns_to_zero(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        requests = self.make_requests(scheduler_config, 5)
        async with self.running(scheduler_factory, scheduler_config, scheduler_options, gated=True) as h:
            assert h.scheduler.pending_count() == 0
            tasks = [asyncio.ensure_future(h.scheduler.infer(requests[0]))]
            await h.wait_busy()
            tasks += [asyncio.ensure_future(h.scheduler.infer(r)) for r in requests[1:]]
            await asyncio.sleep(0.05)
            queued = h.scheduler.pending_count()
            assert queued >= 0
            if self.reports_pending:
                assert queued > 0, "pending_count() is 0 while requests wait for the only instance"
            h.gate.set()
            await asyncio.wait_for(asyncio.gather(*tasks), _TIMEOUT_S)
            assert h.scheduler.pending_count() == 0
            sizes = [e.pending for e in h.events if isinstance(e, QueueSizeChanged)]
        assert all(size >= 0 for size in sizes), f"QueueSizeChanged reported {sizes}"
        if sizes:
            assert sizes[-1] == 0, f"the last QueueSizeChanged reported {sizes[-1]} pending requests"

    @pytest.mark.asyncio
    async def test_model_error_fails_only_its_request(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        bad, good = self.make_requests(scheduler_config, 2)
        bad.parameters[FAIL_PARAMETER] = True
        async with self.running(scheduler_factory, scheduler_config, scheduler_options, failing=True) as h:
            with pytest.raises(TritiumError):
                await asyncio.wait_for(h.scheduler.infer(bad), _TIMEOUT_S)
            self.assert_identity(scheduler_config, good, await asyncio.wait_for(h.scheduler.infer(good), _TIMEOUT_S))

    @pytest.mark.asyncio
    async def test_sequential_requests_on_one_instance(
        self,
        scheduler_factory: Callable[[SchedulerContext], Scheduler],
        scheduler_config: ModelConfig,
        scheduler_options: Mapping[str, Any],
    ) -> None:
        requests = self.make_requests(scheduler_config, 4)
        async with self.running(scheduler_factory, scheduler_config, scheduler_options) as h:
            for request in requests:
                response = await asyncio.wait_for(h.scheduler.infer(request), _TIMEOUT_S)
                self.assert_identity(scheduler_config, request, response)
