"""Properties of the dynamic batcher over random configs and random traffic, on virtual time.

For every generated case: each request gets exactly one answer, and a successful one equals what the
unbatched model returns; no batch exceeds max_batch_size or mixes shapes (the pool double checks); every
batch is the front of the queue in priority-then-arrival order; with preserve_ordering responses come back
in batch order; no request waits past its queue delay while an instance stands idle (so at most its delay
plus the executions in progress); queue limits refuse exactly when the level is full; a REJECT timeout
answers right after the deadline and never lets an expired request run, a DELAY timeout never rejects and
serves expired requests after the fresh ones of their level; cancelled requests never run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_scheduler_dynamic import DynamicBatcher

from tritium import InferenceRequest, StatusCode, TritiumError

US = 1_000
SLACK_NS = 2 * US  # the batcher re-checks a passed deadline within 1 us


@attrs.define
class Policy:
    timeout_us: int
    allow_override: bool
    max_queue_size: int
    delay: bool = False

    def text(self) -> str:
        return (
            f"{{ timeout_action: {'DELAY' if self.delay else 'REJECT'} "
            f"default_timeout_microseconds: {self.timeout_us} "
            f"allow_timeout_override: {str(self.allow_override).lower()} max_queue_size: {self.max_queue_size} }}"
        )

    def deadline(self, enqueue_ns: int, request_timeout_us: int) -> int:
        timeout = self.timeout_us
        if self.allow_override and 0 < request_timeout_us < timeout:
            timeout = request_timeout_us
        return enqueue_ns + timeout * US if timeout else 0


@attrs.define
class Case:
    max_batch: int
    preferred: list[int]
    delay_us: int
    preserve: bool
    levels: int
    default_level: int
    default_policy: Policy
    level_policies: dict[int, Policy]
    instances: int
    exec_base_us: int
    exec_per_item_us: int
    variable_shapes: bool
    # per request: gap_us, batch size, priority, timeout_us, width, cancel_after_us
    traffic: list[tuple[int, int, int, int, int, int | None]]

    def policy(self, level: int) -> Policy:
        return self.level_policies.get(level, self.default_policy)

    def level_of(self, priority: int) -> int:
        if self.levels == 0:
            return 0
        return priority if 1 <= priority <= self.levels else self.default_level

    def config_text(self) -> str:
        parts = [f"max_queue_delay_microseconds: {self.delay_us}", f"preserve_ordering: {str(self.preserve).lower()}"]
        if self.preferred:
            parts.append("preferred_batch_size: [ " + ", ".join(map(str, self.preferred)) + " ]")
        if self.levels:
            parts.append(f"priority_levels: {self.levels} default_priority_level: {self.default_level}")
        parts.append("default_queue_policy " + self.default_policy.text())
        for level, policy in self.level_policies.items():
            parts.append(f"priority_queue_policy {{ key: {level} value {policy.text()} }}")
        return "\n".join(parts)


policies = st.builds(
    Policy,
    timeout_us=st.sampled_from([0, 0, 300, 1500, 6000]),
    allow_override=st.booleans(),
    max_queue_size=st.sampled_from([0, 0, 1, 3, 6]),
    delay=st.booleans(),
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    max_batch = draw(st.integers(1, 8))
    levels = draw(st.sampled_from([0, 0, 2, 3]))
    traffic = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0, 0, 1, 50, 200, 700, 3000]),
                st.integers(1, min(3, max_batch)),
                st.integers(0, levels + 1),
                st.sampled_from([0, 0, 100, 800, 4000]),
                st.sampled_from([2, 3]),
                st.one_of(st.none(), st.none(), st.none(), st.sampled_from([0, 10, 400, 2000])),
            ),
            min_size=1,
            max_size=30,
        )
    )
    return Case(
        max_batch=max_batch,
        preferred=sorted(draw(st.sets(st.integers(1, max_batch), max_size=3))),
        delay_us=draw(st.sampled_from([0, 0, 100, 1000, 5000])),
        preserve=draw(st.booleans()),
        levels=levels,
        default_level=draw(st.integers(1, levels)) if levels else 0,
        default_policy=draw(policies),
        level_policies=draw(st.dictionaries(st.integers(1, max(levels, 1)), policies, max_size=2))
        if levels
        else {},
        instances=draw(st.integers(1, 3)),
        exec_base_us=draw(st.sampled_from([100, 1000, 2500])),
        exec_per_item_us=draw(st.sampled_from([0, 50, 400])),
        variable_shapes=draw(st.booleans()),
        traffic=traffic,
    )


@attrs.define(eq=False)
class Sent:
    request: InferenceRequest
    level: int
    deadline_ns: int = 0
    arrival_ns: int = -1
    result: Any = None
    error: TritiumError | None = None
    answers: int = 0
    done_order: int = -1
    cancel_after_us: int | None = None
    cancelled: bool = False


async def drive(kit: Any, loop: Any, case: Case) -> tuple[Any, list[Sent], list[tuple[list[Any], list[Any]]]]:
    pool = kit.VirtualPool(
        loop,
        size=case.instances,
        max_batch_size=case.max_batch,
        exec_ns=lambda n: (case.exec_base_us + case.exec_per_item_us * n) * US,
    )
    config = kit.simple_config(
        max_batch_size=case.max_batch, dims="-1" if case.variable_shapes else "16", batching=case.config_text()
    )
    scheduler = DynamicBatcher(kit.scheduler_context(pool, config, loop.clock_ns))
    queue = scheduler._queue

    # Spies on the queue: what was queued when each batch was formed, and every enqueue decision.
    formations: list[tuple[list[Any], list[Any]]] = []
    original_form = queue.form
    original_push = queue.push

    def spy_form(now: int, *, flush: bool = False) -> Any:
        # The batching order the queue must follow: per level (highest first) its unexpired requests in
        # arrival order, then those already delayed, then those whose DELAY timeout expires now.
        before = []
        for number in queue._order:
            level = queue._levels[number]
            expired = [e for e in level.main if e.deadline_ns and now > e.deadline_ns]
            before += [e for e in level.main if e not in expired] + list(level.delayed) + expired
        formed = original_form(now, flush=flush)
        if formed.batch:
            rejected = {id(e) for e in formed.rejected}
            formations.append(([e for e in before if id(e) not in rejected], list(formed.batch)))
        return formed

    def spy_push(entry: Any) -> bool:
        level = queue._levels.get(entry.level)
        size_before = len(level) if level is not None else 0
        accepted = original_push(entry)
        limit = case.policy(entry.level).max_queue_size
        assert accepted == (limit == 0 or size_before < limit), "queue limit applied wrongly"
        return accepted

    queue.form = spy_form  # type: ignore[method-assign]
    queue.push = spy_push  # type: ignore[method-assign]

    sent: list[Sent] = []
    done = [0]

    async def send(item: Sent) -> None:
        item.arrival_ns = item.request.arrival_ns = loop.clock_ns()
        item.deadline_ns = case.policy(item.level).deadline(item.arrival_ns, item.request.timeout_us)
        try:
            item.result = await scheduler.infer(item.request)
        except TritiumError as exc:
            item.error = exc
        except asyncio.CancelledError:
            item.cancelled = True
            item.answers += 1
            raise
        item.answers += 1
        item.done_order = done[0]
        done[0] += 1

    async def cancel_later(task: asyncio.Task[None], after_us: int) -> None:
        await asyncio.sleep(after_us * US / 1e9)
        task.cancel()

    tasks = []
    for index, (gap_us, size, priority, timeout_us, width, cancel_after) in enumerate(case.traffic):
        if gap_us:
            await asyncio.sleep(gap_us * US / 1e9)
        request = kit.make_request(
            index, batch_size=size, width=width if case.variable_shapes else 16,
            priority=priority, timeout_us=timeout_us,
        )
        item = Sent(request, case.level_of(priority), cancel_after_us=cancel_after)
        sent.append(item)
        task = loop.create_task(send(item))
        tasks.append(task)
        if cancel_after is not None:
            tasks.append(loop.create_task(cancel_later(task, cancel_after)))
    await asyncio.gather(*tasks, return_exceptions=True)
    await scheduler.close()
    return pool, sent, formations


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_batcher_properties(kit: Any, case: Case) -> None:
    pool, sent, formations = kit.run_virtual(lambda loop: drive(kit, loop, case))
    by_request = {id(s.request): s for s in sent}
    dispatch_ns: dict[int, int] = {}
    dispatch_order: list[Sent] = []
    for batch in pool.batches:
        for request in batch.requests:
            dispatch_ns[id(request)] = batch.start_ns
            dispatch_order.append(by_request[id(request)])
    rejected = {id(r): (error, at) for r, error, at in pool.rejected}

    for item in sent:
        key = id(item.request)
        # exactly one answer (or a cancellation)
        assert item.answers == 1
        ran, was_rejected = key in dispatch_ns, key in rejected
        assert not (ran and was_rejected)
        if item.cancelled:
            if not ran:
                error, _ = rejected[key]
                assert error.code is StatusCode.CANCELLED
            continue
        if item.error is None:
            assert ran
            expected = kit.expected_outputs(item.request)
            got = {t.name: t.data for t in item.result.outputs}
            for name, array in expected.items():
                np.testing.assert_array_equal(got[name], array)
            if item.deadline_ns and not case.policy(item.level).delay:
                assert dispatch_ns[key] <= item.deadline_ns, "an expired request ran"
        elif item.error.message.endswith("Exceeds maximum queue size"):
            assert not ran and not was_rejected and item.error.code is StatusCode.UNAVAILABLE
        else:
            assert item.error.message == "Request timeout expired", item.error
            assert not case.policy(item.level).delay, "a DELAY policy rejected a request"
            error, at = rejected[key]
            assert error is item.error and item.deadline_ns
            assert item.deadline_ns < at <= item.deadline_ns + SLACK_NS

    # every batch is the front of the queue: priority level first, then arrival (expired DELAY ones last)
    for queued, batch in formations:
        assert batch == queued[: len(batch)]
        assert [e.level for e in queued] == sorted(e.level for e in queued)

    # preserve_ordering: responses come back in batch order
    if case.preserve:
        answered = [s for s in dispatch_order if not s.cancelled]
        assert [s.done_order for s in answered] == sorted(s.done_order for s in answered)

    # no request waits past its delay while an instance is idle
    busy: dict[int, list[tuple[int, int]]] = {}
    for batch in pool.batches:
        busy.setdefault(batch.instance, []).append((batch.start_ns, batch.end_ns))
    for item in sent:
        key = id(item.request)
        if key not in dispatch_ns:
            continue
        ready = item.arrival_ns + case.delay_us * US + SLACK_NS
        if dispatch_ns[key] <= ready:
            continue
        for instance in range(case.instances):
            assert _covered(busy.get(instance, []), ready, dispatch_ns[key]), (
                f"request {item.request.id} waited past its delay while instance {instance} was idle"
            )

    # the statistics the pool records come out as Triton's
    assert pool.execution_count == len(pool.batches)
    assert pool.inference_count == sum(b.size for b in pool.batches)
    assert sum(pool.batch_stats.values()) == len(pool.batches)


def _covered(intervals: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether the busy intervals cover [start, end) with no gap."""
    cursor = start
    for begin, finish in sorted(intervals):
        if begin > cursor:
            break
        cursor = max(cursor, finish)
        if cursor >= end:
            return True
    return cursor >= end
