"""Triton's statistics through the kernel's own InstancePool: execution_count, inference_count, batch_stats.

These are what Triton's L0_batcher checks with TRITONSERVER_DELAY_SCHEDULER; here the real pool runs fake
add/sub instances on worker threads, in real time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_scheduler_dynamic import DynamicBatcher

import tritium
from tritium import BatchExecuted, RequestCompleted, StatusCode, TritiumError


def batch_stats(pool: tritium.InstancePool) -> dict[int, int]:
    stats = pool.statistics.as_dict()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]}


async def run_requests(kit: Any, scheduler: DynamicBatcher, requests: list[Any]) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(scheduler.infer(r) for r in requests), return_exceptions=True), timeout=30
    )


@pytest.mark.parametrize(
    ("hold", "batching", "instances", "sizes", "expected"),
    [
        (3, "", 1, [1, 1, 1], {3: 1}),
        (4, "", 1, [2, 2, 2, 2], {8: 1}),
        (6, "preferred_batch_size: [ 2, 4 ]", 1, [1] * 6, {4: 1, 2: 1}),
        (5, "preferred_batch_size: [ 2, 4 ]", 1, [1] * 5, {4: 1, 1: 1}),
        (16, "", 2, [1] * 16, {8: 2}),
        (3, "", 1, [4, 4, 1], {8: 1, 1: 1}),
    ],
)
async def test_batch_stats_with_the_delay_hook(
    kit: Any, delay_scheduler_env: Any, hold: int, batching: str, instances: int, sizes: list[int],
    expected: dict[int, int],
) -> None:
    delay_scheduler_env(hold)
    config = kit.simple_config(batching=batching, instances=instances)
    events: list[Any] = []
    pool = kit.real_pool(config, instances, events=events)
    scheduler = DynamicBatcher(kit.scheduler_context(pool, config, tritium_clock(), events=events))
    requests = [kit.make_request(i, batch_size=n) for i, n in enumerate(sizes)]
    try:
        results = await run_requests(kit, scheduler, requests)
        await scheduler.close()
    finally:
        pool.close()
    for request, response in zip(requests, results, strict=True):
        assert not isinstance(response, BaseException), response
        expected_out = kit.expected_outputs(request)
        for tensor in response.outputs:
            np.testing.assert_array_equal(tensor.data, expected_out[tensor.name])
    stats = pool.statistics.as_dict()
    assert batch_stats(pool) == expected
    assert int(stats["execution_count"]) == sum(expected.values())
    assert int(stats["inference_count"]) == sum(sizes)
    assert int(stats["inference_stats"]["success"]["count"]) == len(sizes)
    executed = [e for e in events if isinstance(e, BatchExecuted)]
    assert sorted(e.batch_size for e in executed) == sorted(
        size for size, count in expected.items() for _ in range(count)
    )
    assert sum(isinstance(e, RequestCompleted) and e.success for e in events) == len(sizes)


async def test_timeouts_and_cancellations_count_as_failures(kit: Any, delay_scheduler_env: Any) -> None:
    delay_scheduler_env(3)
    config = kit.simple_config(batching="default_queue_policy { default_timeout_microseconds: 1 }")
    events: list[Any] = []
    pool = kit.real_pool(config, 1, events=events)
    scheduler = DynamicBatcher(kit.scheduler_context(pool, config, tritium_clock(), events=events))
    try:
        tasks = [asyncio.ensure_future(scheduler.infer(kit.make_request(i))) for i in range(2)]
        await asyncio.sleep(0.01)
        tasks[1].cancel()
        await asyncio.sleep(0.01)
        # two more make three queued: the hold ends, and every queued request has timed out by then
        late = [asyncio.ensure_future(scheduler.infer(kit.make_request(i))) for i in (2, 3)]
        results = await asyncio.wait_for(asyncio.gather(*tasks, *late, return_exceptions=True), 30)
        await scheduler.close()
    finally:
        pool.close()
    assert isinstance(results[1], asyncio.CancelledError)
    for result in (results[0], results[2], results[3]):
        assert isinstance(result, TritiumError) and result.code is StatusCode.UNAVAILABLE
        assert result.message == "Request timeout expired"
    stats = pool.statistics.as_dict()
    assert int(stats["execution_count"]) == 0
    assert int(stats["inference_stats"]["fail"]["count"]) == 4
    reasons = sorted(e.reason.value for e in events if isinstance(e, RequestCompleted))
    assert reasons == ["CANCELED", "REJECTED", "REJECTED", "REJECTED"]


def tritium_clock() -> Any:
    import time

    return time.monotonic_ns


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    traffic=st.lists(st.tuples(st.integers(1, 3), st.sampled_from([2, 3]), st.integers(0, 3)), min_size=1, max_size=24),
    instances=st.integers(1, 2),
    delay_us=st.sampled_from([0, 500]),
    preferred=st.sets(st.integers(1, 8), max_size=2),
)
def test_real_pool_answers_every_request_once_and_correctly(
    kit: Any, traffic: list[tuple[int, int, int]], instances: int, delay_us: int, preferred: set[int]
) -> None:
    """Random traffic through the kernel's InstancePool (real threads, real time): one correct answer per
    request, batches within max_batch_size and never mixing shapes, statistics consistent."""
    batching = f"max_queue_delay_microseconds: {delay_us} priority_levels: 3 default_priority_level: 2"
    if preferred:
        batching += " preferred_batch_size: [ " + ", ".join(map(str, sorted(preferred))) + " ]"
    config = kit.simple_config(dims="-1", batching=batching, instances=instances)
    requests = [
        kit.make_request(i, batch_size=size, width=width, priority=priority)
        for i, (size, width, priority) in enumerate(traffic)
    ]

    async def main() -> tuple[list[Any], Any]:
        pool = kit.real_pool(config, instances)
        scheduler = DynamicBatcher(kit.scheduler_context(pool, config, tritium_clock()))
        try:
            results = await run_requests(kit, scheduler, requests)
            await scheduler.close()
        finally:
            pool.close()
        return results, pool

    results, pool = asyncio.run(main())
    for request, response in zip(requests, results, strict=True):
        assert not isinstance(response, BaseException), response
        for tensor in response.outputs:
            np.testing.assert_array_equal(tensor.data, kit.expected_outputs(request)[tensor.name])
    stats = pool.statistics.as_dict()
    assert int(stats["inference_count"]) == sum(size for size, _, _ in traffic)
    assert sum(batch_stats(pool).values()) == int(stats["execution_count"])
    assert max(batch_stats(pool)) <= 8
    for instance in pool.instances:
        assert all(size <= 8 for size in instance.batch_sizes)
