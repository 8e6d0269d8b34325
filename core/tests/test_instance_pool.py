"""The instance pool: batch assembly, output slicing, statistics, events, classification."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format

from tritium import (
    Batch,
    BatchExecuted,
    DataType,
    FailureReason,
    InferenceRequest,
    InferenceResponse,
    InstancePool,
    ModelInstance,
    RequestCompleted,
    RequestedOutput,
    StatusCode,
    Tensor,
    TritiumError,
)
from tritium.proto.model_config_pb2 import ModelConfig

CONFIG = """
name: "addsub"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "SUM" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "DIFF" data_type: TYPE_INT32 dims: [ 4 ] } ]
"""


class AddSub(ModelInstance):
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[Batch] = []
        self.delay = delay
        self.threads: set[str] = set()

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
        self.batches.append(batch)
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        a, b = batch.inputs["A"], batch.inputs["B"]
        out = {"SUM": a + b, "DIFF": a - b}
        return {k: v for k, v in out.items() if k in batch.requested_outputs}


class Failing(ModelInstance):
    def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
        raise RuntimeError("boom")


def config() -> ModelConfig:
    return text_format.Parse(CONFIG, ModelConfig())


def request(values: list[list[int]], outputs: tuple[str, ...] = (), rid: str = "") -> InferenceRequest:
    a = np.array(values, dtype=np.int32)
    req = InferenceRequest(
        model_name="addsub",
        id=rid,
        inputs={"A": Tensor("A", DataType.INT32, a), "B": Tensor("B", DataType.INT32, a * 2)},
        requested_outputs=[RequestedOutput(o) for o in outputs],
    )
    req.batch_size = len(values)
    req.arrival_ns = time.monotonic_ns()
    return req


async def run(pool: InstancePool, requests: list[InferenceRequest]) -> list[Any]:
    lease = await pool.acquire()
    try:
        return await pool.execute(lease, requests)
    finally:
        pool.release(lease)


async def test_batch_is_concatenated_once_and_outputs_sliced_per_request() -> None:
    instance = AddSub()
    events: list[Any] = []
    pool = InstancePool.from_config(config(), [instance], model_version=1, emit=events.append)
    r1, r2 = request([[1, 2, 3, 4]], rid="one"), request([[5, 6, 7, 8], [9, 10, 11, 12]], ("DIFF",))
    results = await run(pool, [r1, r2])
    assert len(instance.batches) == 1 and instance.batches[0].batch_size == 3
    assert instance.batches[0].requested_outputs == {"SUM", "DIFF"}
    first, second = results
    assert isinstance(first, InferenceResponse) and first.id == "one" and first.model_version == "1"
    assert [t.name for t in first.outputs] == ["SUM", "DIFF"]
    np.testing.assert_array_equal(first.outputs[0].data, [[3, 6, 9, 12]])
    assert [t.name for t in second.outputs] == ["DIFF"]
    np.testing.assert_array_equal(second.outputs[0].data, [[-5, -6, -7, -8], [-9, -10, -11, -12]])
    stats = pool.statistics.as_dict()
    assert stats["execution_count"] == 1 and stats["inference_count"] == 3
    assert stats["inference_stats"]["success"]["count"] == 2
    assert stats["inference_stats"]["compute_infer"]["count"] == 2
    assert [b["batch_size"] for b in stats["batch_stats"]] == [3]
    assert stats["batch_stats"][0]["compute_infer"]["count"] == 1
    assert sum(isinstance(e, BatchExecuted) for e in events) == 1
    completed = [e for e in events if isinstance(e, RequestCompleted)]
    assert [e.batch_size for e in completed] == [1, 2] and all(e.success for e in completed)
    pool.close()


async def test_backend_exception_fails_every_request_of_the_batch() -> None:
    events: list[Any] = []
    pool = InstancePool.from_config(config(), [Failing()], model_version=1, emit=events.append)
    results = await run(pool, [request([[1, 1, 1, 1]]), request([[2, 2, 2, 2]])])
    assert all(isinstance(r, TritiumError) and "boom" in r.message for r in results)
    assert all(e.reason is FailureReason.BACKEND for e in events if isinstance(e, RequestCompleted))
    assert pool.statistics.as_dict()["inference_stats"]["fail"]["count"] == 2
    pool.close()


async def test_instances_run_concurrently_off_the_event_loop() -> None:
    a, b = AddSub(delay=0.2), AddSub(delay=0.2)
    pool = InstancePool.from_config(config(), [a, b], model_version=1)
    loop_thread = threading.current_thread().name
    started = time.monotonic()
    await asyncio.gather(run(pool, [request([[1, 1, 1, 1]])]), run(pool, [request([[1, 1, 1, 1]])]))
    assert time.monotonic() - started < 0.35
    assert loop_thread not in a.threads | b.threads
    pool.close()


async def test_cancelled_caller_does_not_free_the_instance_early() -> None:
    instance = AddSub(delay=0.2)
    pool = InstancePool.from_config(config(), [instance], model_version=1)
    lease = await pool.acquire()
    task = asyncio.ensure_future(pool.execute(lease, [request([[1, 1, 1, 1]])]))
    await asyncio.sleep(0.05)
    task.cancel()
    pool.release(lease)
    assert pool.free_count() == 0
    await asyncio.sleep(0.3)
    assert pool.free_count() == 1
    assert pool.statistics.execution_count == 1
    pool.close()


async def test_classification_output_with_labels() -> None:
    cfg = config()
    pool = InstancePool.from_config(cfg, [AddSub()], model_version=1, labels={"SUM": ["a", "b", "c", "d"]})
    req = request([[1, 5, 2, 0]])
    req.requested_outputs = [RequestedOutput("SUM", classification=2)]
    (response,) = await run(pool, [req])
    tensor = response.outputs[0]
    assert tensor.datatype is DataType.BYTES and tensor.data.shape == (1, 2)
    assert tensor.data.tolist() == [[b"15:1:b", b"6:2:c"]]
    pool.close()


async def test_a_pool_without_instances_refuses_executions_but_counts_completions() -> None:
    pool = InstancePool.from_config(config(), [], model_version=1)
    assert pool.size == 0 and pool.try_acquire() is None
    with pytest.raises(TritiumError) as info:
        await pool.acquire()
    assert info.value.code is StatusCode.UNSUPPORTED
    pool.record_completion(request([[1, 2, 3, 4]]))
    pool.record_completion(request([[1, 2, 3, 4]]), TritiumError.invalid_arg("forwarded request failed"))
    stats = pool.statistics.as_dict()["inference_stats"]
    assert (stats["success"]["count"], stats["fail"]["count"]) == (1, 1)
    pool.close()


async def test_fast_models_run_inline_and_slow_ones_on_worker_threads() -> None:
    fast, slow = AddSub(), AddSub(delay=0.002)
    fast_pool = InstancePool.from_config(config(), [fast], model_version=1, inline_threshold_ns=1_000_000)
    slow_pool = InstancePool.from_config(config(), [slow], model_version=1, inline_threshold_ns=1_000_000)
    for _ in range(40):
        await run(fast_pool, [request([[1, 2, 3, 4]])])
        await run(slow_pool, [request([[1, 2, 3, 4]])])
    loop_thread = threading.current_thread().name
    assert loop_thread in fast.threads
    assert loop_thread not in slow.threads
    assert fast_pool.statistics.execution_count == 40
    disabled = AddSub()
    pool = InstancePool.from_config(config(), [disabled], model_version=1, inline_threshold_ns=0)
    for _ in range(40):
        await run(pool, [request([[1, 2, 3, 4]])])
    assert loop_thread not in disabled.threads
    for p in (fast_pool, slow_pool, pool):
        p.close()


def test_inline_decision_is_robust_to_gil_waits_and_backs_off() -> None:
    from tritium._runtime.inline_policy import InlinePolicy

    policy = InlinePolicy(threshold_ns=200_000)
    # On worker threads most executions waited for the GIL; the fastest shows what the model costs.
    for us in [5000] * 15 + [40]:
        policy.observe(us * 1000, inline=False)
    assert policy.inline
    # Inline the median decides: a model that turns slow goes back to its threads ...
    for us in [40] * 7 + [900] * 9:
        policy.observe(us * 1000, inline=True)
    assert not policy.inline
    # ... and is judged over a longer window before it may come back (no flapping at the edge).
    for us in [40] * 16:
        policy.observe(us * 1000, inline=False)
    assert not policy.inline
    for us in [40] * 16:
        policy.observe(us * 1000, inline=False)
    assert policy.inline
    # A thread execution that finishes after the switch does not count for the inline window.
    for us in [900] * 40:
        policy.observe(us * 1000, inline=False)
    assert policy.inline
    # A model whose instances block on nested requests never runs inline again.
    policy.keep_off()
    for us in [40] * 64:
        policy.observe(us * 1000, inline=False)
    assert not policy.inline


async def test_try_execute_now_runs_fast_models_synchronously() -> None:
    instance = AddSub()
    events: list[Any] = []
    pool = InstancePool.from_config(
        config(), [instance], model_version=1, inline_threshold_ns=1_000_000, emit=events.append
    )
    assert pool.try_execute_now([request([[1, 2, 3, 4]])]) is None  # not measured yet: worker threads
    for _ in range(16):
        await run(pool, [request([[1, 2, 3, 4]])])
    (result,) = pool.try_execute_now([request([[1, 2, 3, 4]], ("SUM",))])  # type: ignore[misc]
    assert isinstance(result, InferenceResponse) and [t.name for t in result.outputs] == ["SUM"]
    assert instance.threads >= {threading.current_thread().name}
    assert pool.free_count() == 1 and pool.statistics.execution_count == 17
    assert sum(isinstance(e, RequestCompleted) for e in events) == 17
    lease = await pool.acquire()
    assert pool.try_execute_now([request([[1, 2, 3, 4]])]) is None  # no free instance: callers wait
    pool.release(lease)
    pool.close()


async def test_leases_go_to_waiters_in_order_and_survive_cancelled_waiters() -> None:
    pool = InstancePool.from_config(config(), [AddSub()], model_version=1)
    lease = await pool.acquire()
    first = asyncio.ensure_future(pool.acquire())
    second = asyncio.ensure_future(pool.acquire())
    third = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    assert pool.try_acquire() is None
    first.cancel()
    pool.release(lease)  # handed to ``second``: ``first`` gave up before
    await asyncio.sleep(0)
    assert second.done() and not third.done()
    handed = second.result()
    third.cancel()
    await asyncio.sleep(0)
    pool.release(handed)
    assert pool.free_count() == 1
    # A waiter cancelled after the lease was handed to it passes the lease on.
    lease = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    pool.release(lease)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.free_count() == 1
    pool.close()
