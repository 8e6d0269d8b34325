"""The dynamic batcher end to end on virtual time: delays, instances, ordering, policies, hook, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from tritium_scheduler_dynamic import DynamicBatcher

from tritium import FailureReason, InferenceRequest, QueueSizeChanged, StatusCode, TritiumError

MS = 1_000_000
US = 1_000


@attrs.define
class Outcome:
    request: InferenceRequest
    result: Any = None
    error: TritiumError | None = None
    done_ns: int = -1
    done_order: int = -1
    at_ns: int = 0
    task: asyncio.Task[None] | None = None


class Scenario:
    """A batcher over a VirtualPool; ``submit`` sends requests at given virtual times."""

    def __init__(
        self,
        kit: Any,
        loop: Any,
        *,
        batching: str = "",
        dims: str = "16",
        instances: int = 1,
        max_batch_size: int = 8,
        exec_ns: Callable[[int], int] = lambda n: 1 * MS,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.kit = kit
        self.loop = loop
        self.events: list[Any] = []
        self.pool = kit.VirtualPool(loop, size=instances, max_batch_size=max_batch_size, exec_ns=exec_ns)
        config = kit.simple_config(max_batch_size=max_batch_size, dims=dims, batching=batching)
        ctx = kit.scheduler_context(
            self.pool, config, loop.clock_ns, events=self.events, options=options or {}
        )
        self.scheduler = DynamicBatcher(ctx)
        self.outcomes: list[Outcome] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._done = 0
        self._driver: asyncio.Task[None] | None = None

    def submit(self, request: InferenceRequest, at_ns: int = 0) -> Outcome:
        """Send ``request`` at virtual time ``at_ns`` (requests of one instant arrive in submit order)."""
        outcome = Outcome(request, at_ns=at_ns)
        self.outcomes.append(outcome)
        return outcome

    def start(self) -> None:
        if self._driver is None:
            self._driver = self.loop.create_task(self._drive())

    async def _drive(self) -> None:
        for outcome in sorted(self.outcomes, key=lambda o: o.at_ns):  # stable: submit order per instant
            delay = outcome.at_ns - self.loop.clock_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            outcome.task = self.loop.create_task(self._send(outcome))
            self.tasks.append(outcome.task)

    async def _send(self, outcome: Outcome) -> None:
        outcome.request.arrival_ns = self.loop.clock_ns()
        try:
            outcome.result = await self.scheduler.infer(outcome.request)
        except TritiumError as exc:
            outcome.error = exc
        outcome.done_ns = self.loop.clock_ns()
        outcome.done_order = self._done
        self._done += 1

    async def finish(self) -> None:
        self.start()
        assert self._driver is not None
        await self._driver
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.scheduler.close()

    def batches(self) -> list[list[str]]:
        return [[r.id for r in b.requests] for b in self.pool.batches]


def run(kit: Any, body: Callable[[Any], Any]) -> Any:
    return kit.run_virtual(body)


def check_outputs(kit: Any, outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    expected = kit.expected_outputs(outcome.request)
    got = {t.name: t.data for t in outcome.result.outputs}
    assert set(got) == set(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array)


# ------------------------------------------------------------------------------------------- tests
def test_requests_arriving_together_are_batched_and_answered_correctly(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, instances=1)
        for i in range(5):
            sc.submit(kit.make_request(i, batch_size=1 + i % 2))
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0", "1", "2", "3", "4"]]  # 1+2+1+2+1 = 7 <= 8
    for outcome in sc.outcomes:
        check_outputs(kit, outcome)


def test_zero_delay_sends_as_soon_as_an_instance_is_free(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, exec_ns=lambda n: 1 * MS)
        sc.submit(kit.make_request(0), at_ns=0)
        for i in range(1, 6):
            sc.submit(kit.make_request(i), at_ns=100 * US)
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0"], ["1", "2", "3", "4", "5"]]
    assert [b.start_ns for b in sc.pool.batches] == [0, 1 * MS]  # the second as soon as the first ends
    assert sc.pool.batch_stats == {1: 1, 5: 1} and sc.pool.execution_count == 2


def test_queue_delay_waits_for_more_requests_up_to_the_delay(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, batching="max_queue_delay_microseconds: 500 preferred_batch_size: [ 4 ]")
        sc.submit(kit.make_request(0), at_ns=0)
        sc.submit(kit.make_request(1), at_ns=100 * US)
        # a preferred size reached goes at once:
        for i in range(2, 6):
            sc.submit(kit.make_request(i), at_ns=10 * MS)
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0", "1"], ["2", "3", "4", "5"]]
    assert sc.pool.batches[0].start_ns == 500 * US  # the oldest request's delay
    assert sc.pool.batches[1].start_ns == 10 * MS


def test_several_instances_each_take_a_batch(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, instances=2, exec_ns=lambda n: 2 * MS)
        for i in range(16):
            sc.submit(kit.make_request(i))
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert [b.size for b in sc.pool.batches] == [8, 8]
    assert {b.instance for b in sc.pool.batches} == {0, 1}
    assert [b.start_ns for b in sc.pool.batches] == [0, 0]
    assert max(o.done_ns for o in sc.outcomes) == 2 * MS


@pytest.mark.parametrize("preserve", [False, True])
def test_preserve_ordering_releases_responses_in_batch_order(kit: Any, preserve: bool) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(
            kit,
            loop,
            instances=2,
            max_batch_size=4,
            batching=f"preserve_ordering: {str(preserve).lower()}",
            exec_ns=lambda n: 10 * MS if n > 1 else 1 * MS,
        )
        for i in range(4):
            sc.submit(kit.make_request(i))
        sc.submit(kit.make_request(4), at_ns=1 * US)
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0", "1", "2", "3"], ["4"]]
    late = sc.outcomes[4]
    if preserve:
        assert late.done_order == 4 and late.done_ns == 10 * MS  # held until the earlier batch answered
    else:
        assert late.done_order == 0 and late.done_ns == 1 * MS + 1 * US


def test_priority_levels_go_first(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(
            kit, loop, max_batch_size=2,
            batching="priority_levels: 2 default_priority_level: 2", exec_ns=lambda n: 1 * MS,
        )
        sc.submit(kit.make_request(0))  # runs at once
        for i, priority in ((1, 2), (2, 0), (3, 1), (4, 1)):
            sc.submit(kit.make_request(i, priority=priority), at_ns=10 * US)
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0"], ["3", "4"], ["1", "2"]]


def test_reject_timeout_answers_unavailable_and_counts_rejected(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(
            kit, loop, batching="default_queue_policy { default_timeout_microseconds: 1000 }",
            exec_ns=lambda n: 10 * MS,
        )
        sc.submit(kit.make_request(0))
        sc.submit(kit.make_request(1), at_ns=1 * US)
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0"]]
    late = sc.outcomes[1]
    assert late.error is not None
    assert late.error.code is StatusCode.UNAVAILABLE
    assert late.error.message == "Request timeout expired"
    assert late.error.reason is FailureReason.REJECTED
    ((request, error, at),) = sc.pool.rejected
    assert request is late.request and error is late.error
    # rejected as soon as the deadline passed, although the instance stayed busy
    assert 1 * MS + 1 * US < at <= 1 * MS + 1 * US + 2 * US
    assert sc.scheduler.pending_count() == 0


def test_request_timeout_override_needs_permission(kit: Any) -> None:
    async def body(loop: Any, allow: bool) -> Scenario:
        sc = Scenario(
            kit, loop, exec_ns=lambda n: 10 * MS,
            batching="default_queue_policy { default_timeout_microseconds: 100000 "
            f"allow_timeout_override: {str(allow).lower()} }}",
        )
        sc.submit(kit.make_request(0))
        sc.submit(kit.make_request(1, timeout_us=500), at_ns=1 * US)
        await sc.finish()
        return sc

    allowed = run(kit, lambda loop: body(loop, True))
    assert allowed.outcomes[1].error is not None and allowed.outcomes[1].done_ns < 1 * MS
    denied = run(kit, lambda loop: body(loop, False))
    assert denied.outcomes[1].error is None


def test_delay_timeout_action_serves_expired_requests_last(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(
            kit, loop, max_batch_size=1,
            batching="default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 }",
            exec_ns=lambda n: 10 * MS,
        )
        sc.submit(kit.make_request(0))
        sc.submit(kit.make_request(1), at_ns=1 * US)  # expires at ~1 ms, while 0 runs
        sc.submit(kit.make_request(2), at_ns=9_500 * US)  # still fresh when the instance frees up
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0"], ["2"], ["1"]]
    assert all(o.error is None for o in sc.outcomes)


def test_queue_full_is_refused_at_once_without_statistics(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(
            kit, loop, max_batch_size=1, batching="default_queue_policy { max_queue_size: 2 }",
            exec_ns=lambda n: 5 * MS,
        )
        sc.submit(kit.make_request(0))
        for i in (1, 2, 3):
            sc.submit(kit.make_request(i), at_ns=1 * US)
        await sc.finish()
        return sc

    sc = run(kit, body)
    refused = sc.outcomes[3]
    assert refused.error is not None and refused.error.code is StatusCode.UNAVAILABLE
    assert refused.error.message == "[request id: 3] Exceeds maximum queue size"
    assert refused.done_ns == 1 * US
    assert sc.pool.rejected == []
    assert sc.batches() == [["0"], ["1"], ["2"]]


def test_cancelled_request_is_dropped_without_execution(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, exec_ns=lambda n: 5 * MS)
        sc.submit(kit.make_request(0))
        sc.submit(kit.make_request(1), at_ns=1 * US)
        sc.submit(kit.make_request(2), at_ns=1 * US)
        sc.start()
        await asyncio.sleep(2 * US / 1e9)
        assert sc.scheduler.pending_count() == 2
        assert sc.outcomes[1].task is not None
        sc.outcomes[1].task.cancel()
        await asyncio.sleep(0)
        assert sc.scheduler.pending_count() == 1
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0"], ["2"]]
    ((request, error, _),) = sc.pool.rejected
    assert request.id == "1" and error.code is StatusCode.CANCELLED and error.reason is FailureReason.CANCELED


def test_delay_scheduler_hook_holds_until_n_requests(kit: Any, delay_scheduler_env: Any) -> None:
    delay_scheduler_env(4)

    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop)
        for i in range(4):
            sc.submit(kit.make_request(i), at_ns=i * MS)
        sc.submit(kit.make_request(4), at_ns=10 * MS)  # after the hold: batching as usual
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0", "1", "2", "3"], ["4"]]
    assert sc.pool.batches[0].start_ns == 3 * MS


def test_delay_scheduler_option_wins_over_environment(kit: Any, delay_scheduler_env: Any) -> None:
    delay_scheduler_env(100)

    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, options={"delay_scheduler": 2})
        sc.submit(kit.make_request(0))
        sc.submit(kit.make_request(1), at_ns=1 * MS)
        await sc.finish()
        return sc

    assert run(kit, body).batches() == [["0", "1"]]


def test_different_shapes_are_not_mixed(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, dims="-1", batching="max_queue_delay_microseconds: 1000")
        for i, width in enumerate((4, 4, 8, 4, 8)):
            sc.submit(kit.make_request(i, width=width))
        await sc.finish()
        return sc

    sc = run(kit, body)
    assert sc.batches() == [["0", "1"], ["2"], ["3"], ["4"]]
    for outcome in sc.outcomes:
        check_outputs(kit, outcome)


def test_ragged_inputs_may_be_mixed(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, dims="-1")
        sc.scheduler.settings = attrs.evolve(sc.scheduler.settings, enforced_inputs={})
        sc.scheduler._queue._settings = sc.scheduler.settings
        for i in range(3):
            sc.submit(kit.make_request(i, width=4))
        await sc.finish()
        return sc

    assert run(kit, body).batches() == [["0", "1", "2"]]


def test_close_flushes_the_queue_and_refuses_new_requests(kit: Any) -> None:
    async def body(loop: Any) -> tuple[Scenario, TritiumError]:
        sc = Scenario(kit, loop, batching="max_queue_delay_microseconds: 10000000")
        sc.submit(kit.make_request(0))
        sc.start()
        await asyncio.sleep(1 * MS / 1e9)
        await sc.scheduler.close()
        assert sc.pool.batches and sc.pool.batches[0].start_ns == 1 * MS
        with pytest.raises(TritiumError) as info:
            await sc.scheduler.infer(kit.make_request(1))
        await sc.finish()
        return sc, info.value

    sc, error = run(kit, body)
    assert sc.outcomes[0].error is None
    assert error.code is StatusCode.UNAVAILABLE
    assert error.message == (
        "[request id: 1] Server is stopping, scheduler for model has stopped accepting new inference requests"
    )


def test_queue_size_events_track_the_queue(kit: Any) -> None:
    async def body(loop: Any) -> Scenario:
        sc = Scenario(kit, loop, max_batch_size=2, exec_ns=lambda n: 1 * MS)
        for i in range(5):
            sc.submit(kit.make_request(i))
        await sc.finish()
        return sc

    sc = run(kit, body)
    sizes = [e.pending for e in sc.events if isinstance(e, QueueSizeChanged)]
    assert all(e.model == "simple" and e.version == "1" for e in sc.events)
    assert sizes[-1] == 0 and max(sizes) >= 3
    assert sc.batches() == [["0", "1"], ["2", "3"], ["4"]]
