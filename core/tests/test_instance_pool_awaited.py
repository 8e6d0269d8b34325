"""The instance pool's awaited path: instances that implement ``execute_async`` run on the event loop, with up
to ``pipeline_depth`` executions in progress at once, recorded like executions on worker threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest
from google.protobuf import text_format

from tritium import (
    Batch,
    Completion,
    DataType,
    FailureReason,
    InferenceRequest,
    InferenceResponse,
    InstancePool,
    ModelInstance,
    RequestCompleted,
    StatusCode,
    Tensor,
    TritiumError,
)
from tritium._runtime.call_chain import CALL_CHAIN
from tritium.proto.model_config_pb2 import ModelConfig

CONFIG = """
name: "addsub"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "SUM" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "DIFF" data_type: TYPE_INT32 dims: [ 4 ] } ]
"""


class AwaitedAddSub(ModelInstance):
    """Adds and subtracts after ``delay`` seconds of waiting (as if another process computed it)."""

    def __init__(self, delay: float = 0.0, depth: int = 1, fail_with: BaseException | None = None) -> None:
        self.delay = delay
        self.pipeline_depth = depth
        self.fail_with = fail_with
        self.threads: set[str] = set()
        self.in_progress = 0
        self.most_in_progress = 0
        self.sync_calls = 0
        self.chains: list[object] = []

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
        self.sync_calls += 1
        return self._outputs(batch)

    async def execute_async(self, batch: Batch) -> Mapping[str, np.ndarray]:
        self.threads.add(threading.current_thread().name)
        self.chains.append(CALL_CHAIN.get())
        self.in_progress += 1
        self.most_in_progress = max(self.most_in_progress, self.in_progress)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
            return self._outputs(batch)
        finally:
            self.in_progress -= 1

    @staticmethod
    def _outputs(batch: Batch) -> Mapping[str, np.ndarray]:
        a, b = batch.inputs["A"], batch.inputs["B"]
        return {"SUM": a + b, "DIFF": a - b}


def pool_of(*instances: ModelInstance, **kwargs: object) -> InstancePool:
    return InstancePool.from_config(text_format.Parse(CONFIG, ModelConfig()), instances, model_version=1, **kwargs)


def request(value: int) -> InferenceRequest:
    a = np.full((1, 4), value, dtype=np.int32)
    req = InferenceRequest(
        model_name="addsub",
        inputs={"A": Tensor("A", DataType.INT32, a), "B": Tensor("B", DataType.INT32, a * 2)},
    )
    req.batch_size = 1
    req.arrival_ns = time.monotonic_ns()
    return req


async def run(pool: InstancePool, req: InferenceRequest) -> InferenceResponse | TritiumError:
    lease = await pool.acquire()
    try:
        return (await pool.execute(lease, [req]))[0]
    finally:
        pool.release(lease)


async def test_awaited_executions_run_on_the_event_loop_and_are_recorded() -> None:
    instance = AwaitedAddSub()
    events: list[object] = []
    pool = pool_of(instance, emit=events.append, inline_threshold_ns=10**9)
    response = await run(pool, request(3))
    assert isinstance(response, InferenceResponse)
    np.testing.assert_array_equal(response.outputs[0].data, [[9, 9, 9, 9]])
    assert instance.threads == {threading.current_thread().name} and instance.sync_calls == 0
    assert pool.statistics.execution_count == 1 and pool.busy_count() == 0
    assert sum(isinstance(e, RequestCompleted) and e.success for e in events) == 1
    assert pool.try_execute_now([request(1)]) is None  # never run synchronously on the loop
    pool.close()


async def test_pipeline_depth_gives_that_many_leases_and_concurrent_executions() -> None:
    instance = AwaitedAddSub(delay=0.05, depth=3)
    pool = pool_of(instance)
    assert pool.size == 1 and pool.free_count() == 3
    started = time.monotonic()
    results = await asyncio.gather(*(run(pool, request(v)) for v in range(6)))
    assert time.monotonic() - started < 0.3  # 2 rounds of 3, not 6 executions one after another
    assert instance.most_in_progress == 3
    for value, result in enumerate(results):
        assert isinstance(result, InferenceResponse)
        np.testing.assert_array_equal(result.outputs[1].data, [[-value] * 4])
    assert pool.free_count() == 3 and pool.statistics.execution_count == 6
    pool.close()


async def test_depth_is_ignored_for_instances_that_execute_on_threads() -> None:
    class Threaded(ModelInstance):
        pipeline_depth = 4

        def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
            return AwaitedAddSub._outputs(batch)

    pool = pool_of(Threaded())
    assert pool.free_count() == 1
    assert isinstance(await run(pool, request(1)), InferenceResponse)
    pool.close()


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (TritiumError(StatusCode.UNAVAILABLE, "stub gone"), StatusCode.UNAVAILABLE, "stub gone"),
        (RuntimeError("boom"), StatusCode.INTERNAL, "RuntimeError: boom"),
    ],
)
async def test_errors_of_awaited_executions_fail_their_requests(
    error: BaseException, code: StatusCode, text: str
) -> None:
    events: list[object] = []
    pool = pool_of(AwaitedAddSub(fail_with=error), emit=events.append)
    result = await run(pool, request(1))
    assert isinstance(result, TritiumError) and result.code is code and text in result.message
    assert result.reason is FailureReason.BACKEND
    assert pool.statistics.as_dict()["inference_stats"]["fail"]["count"] == 1
    assert pool.free_count() == 1
    pool.close()


async def test_a_cancelled_caller_does_not_stop_or_uncount_an_awaited_execution() -> None:
    instance = AwaitedAddSub(delay=0.1)
    pool = pool_of(instance)
    lease = await pool.acquire()
    task = asyncio.ensure_future(pool.execute(lease, [request(1)]))
    await asyncio.sleep(0.02)
    task.cancel()
    pool.release(lease)
    assert pool.free_count() == 0  # the lease comes back when the execution ends
    await asyncio.sleep(0.2)
    assert pool.free_count() == 1 and pool.statistics.execution_count == 1
    pool.close()


async def test_nested_requests_keep_their_call_chain() -> None:
    instance = AwaitedAddSub()
    pool = pool_of(instance)
    req = request(1)
    req.call_chain = ("ensemble",)
    await run(pool, req)
    await run(pool, request(2))
    assert instance.chains[0] == ("ensemble", "addsub") and not instance.chains[1]
    pool.close()


async def test_execute_async_may_return_a_future_instead_of_a_coroutine() -> None:
    class FutureAddSub(AwaitedAddSub):
        def execute_async(self, batch: Batch) -> asyncio.Future[Mapping[str, np.ndarray]]:
            future: asyncio.Future[Mapping[str, np.ndarray]] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.01, future.set_result, self._outputs(batch))
            return future

    pool = pool_of(FutureAddSub(depth=2))
    results = await asyncio.gather(run(pool, request(1)), run(pool, request(2)), run(pool, request(3)))
    assert [int(r.outputs[0].data[0, 0]) for r in results] == [3, 6, 9]  # type: ignore[union-attr]
    assert pool.statistics.execution_count == 3
    pool.close()


async def test_execute_async_may_return_a_future_that_is_already_done() -> None:
    """A backend that answers at once (a finished future) is recorded before its caller reads the outcome."""

    class DoneAddSub(AwaitedAddSub):
        def execute_async(self, batch: Batch) -> asyncio.Future[Mapping[str, np.ndarray]]:
            future: asyncio.Future[Mapping[str, np.ndarray]] = asyncio.get_running_loop().create_future()
            future.set_result(self._outputs(batch))
            return future

    pool = pool_of(DoneAddSub(depth=2))
    results = await asyncio.gather(run(pool, request(1)), run(pool, request(2)))
    assert [int(r.outputs[0].data[0, 0]) for r in results] == [3, 6]  # type: ignore[union-attr]
    assert pool.statistics.execution_count == 2
    pool.close()


# ----------------------------------------------------------------------------- started at once (no task)
class CompletionAddSub(AwaitedAddSub):
    """Returns a :class:`tritium.Completion` the test settles (``finish``), as a backend settles one when its
    worker process answers."""

    def __init__(self, depth: int = 1) -> None:
        super().__init__(depth=depth)
        self.running: list[tuple[Completion[Mapping[str, np.ndarray]], Batch]] = []

    def execute_async(self, batch: Batch) -> Completion[Mapping[str, np.ndarray]]:  # type: ignore[override]
        done: Completion[Mapping[str, np.ndarray]] = Completion()
        self.running.append((done, batch))
        return done

    def finish(self, error: BaseException | None = None) -> None:
        done, batch = self.running.pop(0)
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(self._outputs(batch))


async def test_started_execution_is_recorded_and_its_lease_back_within_the_call_that_settles_it() -> None:
    instance = CompletionAddSub()
    pool = pool_of(instance)
    started = pool.try_start_now([request(2)])
    assert isinstance(started, Completion) and not started.done()
    assert pool.free_count() == 0 and pool.busy_count() == 1
    heard: list[tuple[int, int, int]] = []
    started.when_settled(lambda c: heard.append((pool.free_count(), pool.statistics.execution_count, len(c.result()))))
    instance.finish()
    assert heard == [(1, 1, 1)]  # synchronously: no loop turn between the instance's answer and the listener
    (result,) = started.result()
    assert isinstance(result, InferenceResponse)
    np.testing.assert_array_equal(result.outputs[0].data, [[6, 6, 6, 6]])
    assert pool.busy_count() == 0
    pool.close()


async def test_try_start_now_starts_nothing_when_it_would_have_to_wait() -> None:
    class Threaded(ModelInstance):
        def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
            return AwaitedAddSub._outputs(batch)

    threaded = pool_of(Threaded())
    assert threaded.try_start_now([request(1)]) is None and threaded.free_count() == 1
    threaded.close()

    instance = CompletionAddSub(depth=1)
    pool = pool_of(instance)
    assert pool.try_start_now([]) is None
    first = pool.try_start_now([request(1)])
    assert first is not None
    assert pool.try_start_now([request(2)]) is None  # the only slot is taken: nothing started
    assert len(instance.running) == 1
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    instance.finish()  # the lease goes to the waiter, first come first served
    lease = await waiting
    assert pool.try_start_now([request(3)]) is None and len(instance.running) == 0
    pool.release(lease)
    assert pool.try_start_now([request(3)]) is not None
    instance.finish()
    assert pool.statistics.execution_count == 2
    pool.close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TritiumError(StatusCode.UNAVAILABLE, "stub gone"), StatusCode.UNAVAILABLE),
        (RuntimeError("x"), StatusCode.INTERNAL),
    ],
)
async def test_a_started_execution_that_fails_fails_its_requests(error: BaseException, code: StatusCode) -> None:
    instance = CompletionAddSub()
    pool = pool_of(instance)
    started = pool.try_start_now([request(1)])
    assert started is not None
    instance.finish(error)
    (result,) = started.result()
    assert isinstance(result, TritiumError) and result.code is code and result.reason is FailureReason.BACKEND
    assert pool.free_count() == 1
    assert pool.statistics.as_dict()["inference_stats"]["fail"]["count"] == 1
    pool.close()


async def test_instances_returning_coroutines_or_futures_start_at_once_too() -> None:
    instance = AwaitedAddSub(delay=0.01, depth=2)
    pool = pool_of(instance)
    started = [pool.try_start_now([request(v)]) for v in (1, 2)]
    assert all(s is not None for s in started) and pool.try_start_now([request(3)]) is None
    results = await asyncio.gather(*started)  # type: ignore[arg-type]
    assert [int(r[0].outputs[0].data[0, 0]) for r in results] == [3, 6]
    assert pool.free_count() == 2 and pool.statistics.execution_count == 2
    pool.close()


@pytest.mark.parametrize(("started_at", "queue_ns", "infer_ns"), [(6_000, 5_000, 4_000), (None, 1_000, 8_000),
                                                                   (20_000, 1_000, 8_000)])
async def test_a_completions_started_ns_moves_the_time_its_backend_held_it_to_queue_time(
    started_at: int | None, queue_ns: int, infer_ns: int
) -> None:
    """Arrived at 1000, started by the kernel at 2000, begun by the backend's worker at ``started_at``, ended
    at 10000: the time before the backend began counts as queue time (as Triton counts a request queued until
    its backend takes it); a ``started_ns`` outside the execution is ignored."""
    now = [2_000]
    instance = CompletionAddSub()
    pool = pool_of(instance, clock_ns=lambda: now[0])
    req = request(1)
    req.arrival_ns = 1_000
    started = pool.try_start_now([req])
    assert started is not None
    now[0] = 10_000
    done, batch = instance.running.pop(0)
    done.started_ns = started_at
    done.set_result(instance._outputs(batch))
    stats = pool.statistics.as_dict()["inference_stats"]
    assert stats["queue"]["ns"] == queue_ns and stats["compute_infer"]["ns"] == infer_ns
    pool.close()
