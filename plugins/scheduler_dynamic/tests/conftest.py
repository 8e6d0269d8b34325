"""Test harness for the dynamic batcher: a virtual-time event loop, a fake model, and two pools.

* :func:`virtual_loop` runs asyncio on a clock that jumps straight to the next timer whenever nothing is
  ready, so queue delays, timeouts and execution times are exact and tests take no real time.
* :class:`AddSubInstance` is a real :class:`tritium.ModelInstance` computing Triton's ``simple`` model
  (``OUTPUT0 = INPUT0 + INPUT1``, ``OUTPUT1 = INPUT0 - INPUT1``) row by row, so a batched answer can be
  compared with the unbatched one.
* :class:`VirtualPool` is a test double of :class:`tritium.InstancePool` (the same methods) whose executions
  take virtual time and which records a trace of every batch, rejection and lease, and checks the pool's
  contract on every call (a lease executes one batch at a time, no request runs twice, no batch exceeds
  ``max_batch_size``, every batch is shape-compatible).
* :func:`real_pool` builds the kernel's own :class:`tritium.InstancePool` around fake instances, for the
  statistics tests (execution_count, batch_stats) in real time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import pytest
from google.protobuf import text_format

import tritium
from tritium import Batch, InferenceRequest, InferenceResponse, ModelInstance, Tensor, TritiumError

try:  # the kernel's config module; tritonclient ships the same message (same field names and numbers)
    from tritium.config import ModelConfig
except ImportError:  # pragma: no cover - until tritium.config lands
    from tritonclient.grpc.model_config_pb2 import ModelConfig  # type: ignore[no-redef]


# ------------------------------------------------------------------------------------ virtual time
class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: when no file descriptor is ready, time jumps by the timeout the loop asked for."""

    def __init__(self, clock: _VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("virtual-time deadlock: every task waits and no timer is set")
            self._clock.now += max(timeout, 0.0)
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time; ``clock_ns()`` is its time in integer nanoseconds."""

    def __init__(self) -> None:
        self._vclock = _VirtualClock()
        super().__init__(_VirtualSelector(self._vclock))

    def time(self) -> float:
        return self._vclock.now

    def clock_ns(self) -> int:
        return round(self._vclock.now * 1e9)


def run_virtual(main: Callable[[VirtualLoop], Any]) -> Any:
    """Run ``await main(loop)`` on a fresh virtual-time loop and close it."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


# -------------------------------------------------------------------------------------- the model
class AddSubInstance(ModelInstance):
    """Triton's ``simple`` model, row by row; records the batch sizes it executed."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def execute(self, batch: Batch) -> dict[str, np.ndarray]:
        a = batch.inputs["INPUT0"]
        b = batch.inputs["INPUT1"]
        self.batch_sizes.append(int(a.shape[0]))
        return {"OUTPUT0": a + b, "OUTPUT1": a - b}


def expected_outputs(request: InferenceRequest) -> dict[str, np.ndarray]:
    """What the unbatched model answers for ``request``."""
    a = request.inputs["INPUT0"].data
    b = request.inputs["INPUT1"].data
    return {"OUTPUT0": a + b, "OUTPUT1": a - b}


def make_request(
    index: int,
    *,
    batch_size: int = 1,
    width: int = 16,
    priority: int = 0,
    timeout_us: int = 0,
    arrival_ns: int = 0,
) -> InferenceRequest:
    """A validated-looking request for the add/sub model: INT32 [batch_size, width] inputs."""
    rng = np.random.default_rng(index)
    a = rng.integers(-100, 100, size=(batch_size, width), dtype=np.int32)
    b = rng.integers(-100, 100, size=(batch_size, width), dtype=np.int32)
    return InferenceRequest(
        model_name="simple",
        inputs={"INPUT0": Tensor.from_numpy("INPUT0", a), "INPUT1": Tensor.from_numpy("INPUT1", b)},
        id=str(index),
        priority=priority,
        timeout_us=timeout_us,
        batch_size=batch_size,
        arrival_ns=arrival_ns,
    )


def simple_config(
    *, max_batch_size: int = 8, dims: str = "16", batching: str = "", instances: int = 1
) -> Any:
    """The ``simple`` model's config with the given ``dynamic_batching { ... }`` body."""
    text = f"""
        name: "simple"
        platform: "onnxruntime_onnx"
        max_batch_size: {max_batch_size}
        input {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ {dims} ] }}
        input {{ name: "INPUT1" data_type: TYPE_INT32 dims: [ {dims} ] }}
        output {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ {dims} ] }}
        output {{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [ {dims} ] }}
        instance_group {{ kind: KIND_CPU count: {instances} }}
        dynamic_batching {{ {batching} }}
    """
    return text_format.Parse(text, ModelConfig())


# ------------------------------------------------------------------------------- the pool double
@attrs.define
class BatchRecord:
    instance: int
    start_ns: int
    end_ns: int
    requests: list[InferenceRequest]

    @property
    def size(self) -> int:
        return sum(max(r.batch_size, 1) for r in self.requests)


@attrs.define
class _Lease:
    index: int
    executing: bool = False


class VirtualPool:
    """A test double of :class:`tritium.InstancePool` on virtual time, checking the pool contract.

    ``exec_ns(batch_size)`` is how long one execution takes. Statistics are kept as Triton keeps them:
    ``execution_count``, ``inference_count``, ``batch_stats`` (batch size -> executions).
    """

    def __init__(
        self,
        loop: VirtualLoop,
        *,
        size: int = 1,
        max_batch_size: int = 8,
        exec_ns: Callable[[int], int] = lambda n: 1_000_000,
        events: list[Any] | None = None,
    ) -> None:
        self._loop = loop
        self._max_batch_size = max_batch_size
        self._exec_ns = exec_ns
        self._instances = [AddSubInstance() for _ in range(size)]
        self._free: asyncio.Queue[_Lease] = asyncio.Queue()
        for index in range(size):
            self._free.put_nowait(_Lease(index))
        self.batches: list[BatchRecord] = []
        self.rejected: list[tuple[InferenceRequest, TritiumError, int]] = []
        self.events = events if events is not None else []
        self._seen: set[int] = set()
        self.execution_count = 0
        self.inference_count = 0
        self.batch_stats: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self._instances)

    def free_count(self) -> int:
        return self._free.qsize()

    def busy_count(self) -> int:
        return self.size - self.free_count()

    async def acquire(self) -> _Lease:
        return await self._free.get()

    def try_acquire(self) -> _Lease | None:
        try:
            return self._free.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def release(self, lease: _Lease) -> None:
        assert not lease.executing, "released while executing"
        self._free.put_nowait(lease)

    async def execute(
        self, lease: _Lease, requests: Sequence[InferenceRequest]
    ) -> list[InferenceResponse | TritiumError]:
        assert requests, "empty batch"
        assert not lease.executing, "one lease executes one batch at a time"
        for request in requests:
            assert id(request) not in self._seen, f"request {request.id} executed or rejected twice"
            self._seen.add(id(request))
        size = sum(max(r.batch_size, 1) for r in requests)
        assert size <= self._max_batch_size, f"batch of {size} exceeds max_batch_size"
        lease.executing = True
        start = self._loop.clock_ns()
        # One backend call on the concatenated inputs: raises if shapes were mixed.
        inputs = {
            name: np.concatenate([r.inputs[name].data for r in requests], axis=0)
            for name in requests[0].inputs
        }
        instance = self._instances[lease.index]
        outputs = instance.execute(Batch(inputs, frozenset(), list(requests), size))
        record = BatchRecord(lease.index, start, -1, list(requests))
        self.batches.append(record)  # in the order executions start
        await asyncio.sleep(self._exec_ns(size) / 1e9)
        lease.executing = False
        record.end_ns = self._loop.clock_ns()
        self.execution_count += 1
        self.inference_count += size
        self.batch_stats[size] = self.batch_stats.get(size, 0) + 1
        results: list[InferenceResponse | TritiumError] = []
        offset = 0
        for request in requests:
            n = max(request.batch_size, 1)
            results.append(
                InferenceResponse(
                    model_name=request.model_name,
                    model_version="1",
                    id=request.id,
                    outputs=[Tensor.from_numpy(k, v[offset : offset + n]) for k, v in outputs.items()],
                )
            )
            offset += n
        return results

    def reject(self, request: InferenceRequest, error: TritiumError) -> None:
        assert id(request) not in self._seen, f"request {request.id} rejected after it ran"
        self._seen.add(id(request))
        self.rejected.append((request, error, self._loop.clock_ns()))


def scheduler_context(pool: Any, config: Any, clock_ns: Callable[[], int], **kwargs: Any) -> Any:
    """A :class:`tritium.SchedulerContext` for the ``simple`` model version 1."""
    events: list[Any] = kwargs.pop("events", [])
    return tritium.SchedulerContext(
        model_name="simple",
        model_version=1,
        config=config,
        pool=pool,
        clock_ns=clock_ns,
        emit=events.append,
        **kwargs,
    )


# --------------------------------------------------------------------------------- the real pool
def real_pool(config: Any, count: int = 1, *, events: list[Any] | None = None) -> tritium.InstancePool:
    """The kernel's InstancePool around ``count`` add/sub instances."""
    sink = events if events is not None else []
    return tritium.InstancePool.from_config(
        config, [AddSubInstance() for _ in range(count)], model_version=1, emit=sink.append
    )


@pytest.fixture
def delay_scheduler_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set TRITONSERVER_DELAY_SCHEDULER for the scheduler created next."""

    def set_count(count: int) -> None:
        monkeypatch.setenv("TRITONSERVER_DELAY_SCHEDULER", str(count))

    return set_count


@pytest.fixture(scope="session")
def kit() -> Any:
    """This harness as one object (test modules cannot import conftest under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(
        VirtualLoop=VirtualLoop,
        VirtualPool=VirtualPool,
        AddSubInstance=AddSubInstance,
        BatchRecord=BatchRecord,
        run_virtual=run_virtual,
        expected_outputs=expected_outputs,
        make_request=make_request,
        simple_config=simple_config,
        scheduler_context=scheduler_context,
        real_pool=real_pool,
    )
