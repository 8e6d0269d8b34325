"""Batch formation (Triton's GetDynamicBatch) on the synchronous queue, case by case and by property."""

from __future__ import annotations

from collections.abc import Hashable

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_scheduler_dynamic import BatcherSettings, BatchQueue, Entry, QueuePolicy

US = 1_000


def make_settings(**kwargs: object) -> BatcherSettings:
    kwargs.setdefault("max_batch_size", 8)
    kwargs.setdefault("preferred_batch_sizes", frozenset({kwargs["max_batch_size"]}))
    return BatcherSettings(**kwargs)  # type: ignore[arg-type]


def push(
    queue: BatchQueue,
    settings: BatcherSettings,
    name: str,
    *,
    size: int = 1,
    at: int = 0,
    priority: int = 0,
    key: Hashable | None = None,
    timeout_us: int = 0,
) -> Entry:
    level = settings.level_of(priority)
    entry = Entry(
        payload=name,
        batch_size=size,
        level=level,
        key=key,
        enqueue_ns=at,
        deadline_ns=settings.policy_of(level).deadline_ns(at, timeout_us),
    )
    assert queue.push(entry)
    return entry


def names(entries: list[Entry]) -> list[str]:
    return [e.payload for e in entries]


def test_no_delay_sends_whatever_is_pending() -> None:
    s = make_settings()
    q = BatchQueue(s)
    push(q, s, "a")
    push(q, s, "b", size=2)
    formed = q.form(0)
    assert names(formed.batch) == ["a", "b"] and len(q) == 0


def test_max_batch_size_is_never_exceeded_counting_request_batch_sizes() -> None:
    s = make_settings(max_batch_size=4, preferred_batch_sizes=frozenset({4}))
    q = BatchQueue(s)
    for name, size in (("a", 3), ("b", 2), ("c", 1)):
        push(q, s, name, size=size)
    assert names(q.form(0).batch) == ["a"]  # a+b = 5 > 4: send a alone, b waits
    assert names(q.form(0).batch) == ["b", "c"]


def test_preferred_size_goes_at_once_even_with_a_delay() -> None:
    s = make_settings(preferred_batch_sizes=frozenset({2, 4}), max_queue_delay_ns=100 * US)
    q = BatchQueue(s)
    for name in "abc":
        push(q, s, name)
    formed = q.form(0)
    assert names(formed.batch) == ["a", "b"]  # 2 is preferred; 3 is not
    formed = q.form(0)
    assert formed.batch == [] and formed.wait_ns == 100 * US  # c waits for company or its delay
    assert names(q.form(100 * US).batch) == ["c"]


def test_delay_waits_for_the_oldest_request_and_sends_when_exceeded() -> None:
    s = make_settings(max_queue_delay_ns=100 * US)
    q = BatchQueue(s)
    push(q, s, "a", at=0)
    push(q, s, "b", at=40 * US)
    formed = q.form(50 * US)
    assert formed.batch == [] and formed.wait_ns == 50 * US
    assert names(q.form(100 * US).batch) == ["a", "b"]


def test_batch_is_cut_where_it_would_pass_the_max_preferred_size() -> None:
    s = make_settings(max_batch_size=8, preferred_batch_sizes=frozenset({3}), max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    push(q, s, "a", size=2)
    push(q, s, "b", size=2)
    # a+b = 4 would pass the max preferred size 3: Triton marks the batch before b and sends a at once.
    assert names(q.form(0).batch) == ["a"]
    push(q, s, "c", size=5)
    assert names(q.form(0).batch) == ["b"]
    assert names(q.form(0).batch) == ["c"]  # 5 >= max preferred: cannot grow usefully, goes now


def test_a_lone_request_above_every_preferred_size_goes_at_once() -> None:
    s = make_settings(max_batch_size=8, preferred_batch_sizes=frozenset({2}), max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    push(q, s, "big", size=5)
    assert names(q.form(0).batch) == ["big"]


def test_requests_with_different_keys_are_not_mixed() -> None:
    s = make_settings(max_queue_delay_ns=10**9, enforced_inputs={"INPUT0": False})
    q = BatchQueue(s)
    push(q, s, "a", key=(3,))
    push(q, s, "b", key=(3,))
    push(q, s, "c", key=(5,))
    push(q, s, "d", key=(3,))
    assert names(q.form(0).batch) == ["a", "b"]  # c does not match: send what is pending, now
    assert names(q.form(0).batch) == ["c"]
    assert q.form(0).batch == []  # d alone, delay not over
    assert names(q.form(10**9).batch) == ["d"]


def test_priority_levels_are_batched_highest_first() -> None:
    s = make_settings(priority_levels=3, default_priority_level=2, max_batch_size=3,
                      preferred_batch_sizes=frozenset({3}))
    q = BatchQueue(s)
    push(q, s, "low", priority=3)
    push(q, s, "default", priority=0)
    push(q, s, "high1", priority=1)
    push(q, s, "high2", priority=1)
    push(q, s, "out-of-range", priority=9)  # = default level 2
    assert names(q.form(0).batch) == ["high1", "high2", "default"]
    assert names(q.form(0).batch) == ["out-of-range", "low"]


def test_reject_policy_drops_expired_requests_with_their_deadline() -> None:
    s = make_settings(default_policy=QueuePolicy(default_timeout_ns=10 * US), max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    push(q, s, "a", at=0)
    push(q, s, "b", at=5 * US)
    assert q.next_reject_deadline() == 10 * US
    assert q.reject_expired(10 * US) == []  # expired means strictly after the deadline
    formed = q.form(11 * US)
    assert names(formed.rejected) == ["a"] and formed.batch == []
    assert formed.wait_ns == 4 * US  # b's own timeout comes before its delay
    assert names(q.form(16 * US).rejected) == ["b"]
    assert len(q) == 0 and q.next_reject_deadline() == 0


def test_delay_policy_moves_expired_requests_behind_their_level() -> None:
    s = make_settings(
        max_batch_size=2,
        preferred_batch_sizes=frozenset({2}),
        default_policy=QueuePolicy(delay_on_timeout=True, default_timeout_ns=10 * US),
    )
    q = BatchQueue(s)
    push(q, s, "old", at=0)
    push(q, s, "new1", at=20 * US)
    push(q, s, "new2", at=20 * US)
    formed = q.form(21 * US)
    assert formed.rejected == []
    assert names(formed.batch) == ["new1", "new2"]
    assert names(q.form(21 * US).batch) == ["old"]


def test_request_timeout_override() -> None:
    policy = QueuePolicy(default_timeout_ns=100 * US, allow_timeout_override=True)
    s = make_settings(default_policy=policy, max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    push(q, s, "short", timeout_us=5)
    push(q, s, "long", timeout_us=500)
    assert names(q.reject_expired(6 * US)) == ["short"]
    assert names(q.reject_expired(101 * US)) == ["long"]


def test_queue_size_limit_per_level() -> None:
    s = make_settings(
        priority_levels=2, default_priority_level=2,
        level_policies={1: QueuePolicy(max_queue_size=1)},
        default_policy=QueuePolicy(max_queue_size=2),
    )
    q = BatchQueue(s)
    push(q, s, "h", priority=1)
    refused = Entry(payload="h2", batch_size=1, level=1, key=None, enqueue_ns=0)
    assert not q.push(refused) and not refused.queued
    push(q, s, "d1")
    push(q, s, "d2")
    assert not q.push(Entry(payload="d3", batch_size=1, level=2, key=None, enqueue_ns=0))
    assert len(q) == 3


def test_remove_cancelled_entry() -> None:
    s = make_settings(max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    a = push(q, s, "a")
    push(q, s, "b")
    assert q.remove(a) and not q.remove(a)
    assert names(q.form(10**9).batch) == ["b"]


def test_flush_ignores_the_delay() -> None:
    s = make_settings(max_queue_delay_ns=10**9)
    q = BatchQueue(s)
    push(q, s, "a")
    assert names(q.form(0, flush=True).batch) == ["a"]


# ---------------------------------------------------------------------------------------- property
@attrs.define
class _Req:
    size: int
    priority: int
    key: int
    at: int


requests_st = st.lists(
    st.builds(
        _Req,
        size=st.integers(1, 4),
        priority=st.integers(0, 3),
        key=st.integers(0, 1),
        at=st.integers(0, 50),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    reqs=requests_st,
    max_batch=st.integers(4, 8),
    preferred=st.sets(st.integers(1, 4), max_size=3),
    delay_us=st.sampled_from([0, 10, 100]),
    levels=st.sampled_from([0, 2]),
    check_shapes=st.booleans(),
    now=st.integers(0, 200),
)
def test_every_batch_is_a_compatible_prefix_within_limits(
    reqs: list[_Req],
    max_batch: int,
    preferred: set[int],
    delay_us: int,
    levels: int,
    check_shapes: bool,
    now: int,
) -> None:
    s = make_settings(
        max_batch_size=max_batch,
        preferred_batch_sizes=frozenset(preferred or {max_batch}),
        max_queue_delay_ns=delay_us * US,
        priority_levels=levels,
        default_priority_level=1 if levels else 0,
        enforced_inputs={"x": False} if check_shapes else {},
    )
    q = BatchQueue(s)
    entries = []
    for i, r in enumerate(sorted(reqs, key=lambda r: r.at)):
        entries.append(
            push(q, s, str(i), size=r.size, at=r.at * US, priority=r.priority,
                 key=r.key if check_shapes else None)
        )
    order = sorted(entries, key=lambda e: (e.level, e.seq))  # batching order: level, then arrival
    taken: list[Entry] = []
    clock = now * US
    while len(q):
        formed = q.form(clock)
        assert formed.rejected == []
        if not formed.batch:
            assert formed.wait_ns > 0
            oldest = min(e.enqueue_ns for e in entries if e.queued)
            # only ever waits while the oldest queued request is within its delay
            assert s.max_queue_delay_ns and clock - oldest < s.max_queue_delay_ns
            clock += formed.wait_ns
            continue
        batch = formed.batch
        assert sum(e.batch_size for e in batch) <= max_batch
        assert len({e.key for e in batch}) == 1
        remaining = [e for e in order if e not in taken]
        assert batch == remaining[: len(batch)], "a batch is the front of the queue, in order"
        taken.extend(batch)
    assert sorted(names(taken)) == sorted(names(entries))
