"""The batcher's queue and Triton's batch-formation rule, as plain synchronous logic.

Nothing here awaits or reads a clock: every method takes ``now`` (nanoseconds), so the rule can be tested
exhaustively and the asyncio part (:mod:`._batcher`) only decides *when* to ask. The rule is Triton's
``DynamicBatchScheduler::GetDynamicBatch`` over its ``PriorityQueue``:

- one FIFO per priority level (1 = highest; 0 when priorities are off), walked highest level first; within
  a level the unexpired requests first, then those whose timeout expired under a DELAY policy;
- a request counts its own batch size; a batch never exceeds ``max_batch_size`` and never mixes requests
  whose batch keys differ (:func:`._shapes.batch_key`);
- a preferred batch size reached (and the oldest request within its delay) is sent at once; so is a batch
  that cannot grow (max preferred size reached, or the next request does not fit or does not match); with
  no queue delay whatever is pending is sent; otherwise it waits until the oldest pending request has
  waited ``max_queue_delay_microseconds`` (or a pending request's timeout comes first).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any

import attrs

from tritium_scheduler_dynamic._settings import BatcherSettings, QueuePolicy

_MIN_WAIT_NS = 1_000  # re-check granularity once a deadline has passed (Triton waits in microseconds)


@attrs.define(slots=True, eq=False)
class Entry:
    """One queued request. ``payload`` is the caller's (the batcher keeps the request and its future);
    ``deadline_ns`` 0 means no timeout. ``queued`` is False once the entry left the queue."""

    payload: Any
    batch_size: int
    level: int
    key: Hashable | None
    enqueue_ns: int
    deadline_ns: int = 0
    seq: int = 0
    queued: bool = False
    delayed: bool = False


@attrs.define(slots=True)
class Formed:
    """What one look at the queue decided.

    ``batch``: the entries to execute now (removed from the queue), in order; empty when nothing should be
    sent yet. ``wait_ns``: when ``batch`` is empty and the queue is not, look again after this long at the
    latest. ``rejected``: entries whose timeout expired under a REJECT policy (removed from the queue).
    """

    batch: list[Entry]
    wait_ns: int
    rejected: list[Entry]


class _Level:
    """One priority level: its policy, its unexpired FIFO and its FIFO of delayed (expired) requests."""

    __slots__ = ("delayed", "main", "policy")

    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self.main: deque[Entry] = deque()
        self.delayed: deque[Entry] = deque()

    def __len__(self) -> int:
        return len(self.main) + len(self.delayed)


class BatchQueue:
    """The priority queue of one model version, and batch formation over it."""

    def __init__(self, settings: BatcherSettings) -> None:
        self._settings = settings
        self._levels: dict[int, _Level] = {}
        self._order: list[int] = []  # level numbers, highest priority (smallest number) first
        self._size = 0
        self._seq = 0
        # REJECT-policy deadlines, to reject expired requests anywhere in the queue (lazy deletion).
        self._deadlines: list[tuple[int, int, Entry]] = []

    def __len__(self) -> int:
        return self._size

    # ------------------------------------------------------------------------------------ membership
    def push(self, entry: Entry) -> bool:
        """Append ``entry`` to its level; False (and nothing queued) when the level's queue is full."""
        level = self._levels.get(entry.level)
        if level is None:
            level = self._levels[entry.level] = _Level(self._settings.policy_of(entry.level))
            self._order.append(entry.level)
            self._order.sort()
        limit = level.policy.max_queue_size
        if limit and len(level) >= limit:
            return False
        self._seq += 1
        entry.seq = self._seq
        entry.queued = True
        level.main.append(entry)
        self._size += 1
        if entry.deadline_ns and not level.policy.delay_on_timeout:
            heapq.heappush(self._deadlines, (entry.deadline_ns, entry.seq, entry))
        return True

    def remove(self, entry: Entry) -> bool:
        """Take a still-queued entry out (its request was cancelled); False when it already left."""
        if not entry.queued:
            return False
        level = self._levels[entry.level]
        (level.delayed if entry.delayed else level.main).remove(entry)
        entry.queued = False
        self._size -= 1
        return True

    # -------------------------------------------------------------------------------------- timeouts
    def next_reject_deadline(self) -> int:
        """The earliest deadline of a queued REJECT-policy request, or 0 when there is none."""
        heap = self._deadlines
        while heap and not heap[0][2].queued:
            heapq.heappop(heap)
        return heap[0][0] if heap else 0

    def reject_expired(self, now: int) -> list[Entry]:
        """Remove and return every REJECT-policy request whose deadline has passed (``now > deadline``)."""
        heap = self._deadlines
        rejected: list[Entry] = []
        while heap and (not heap[0][2].queued or heap[0][0] < now):
            _, _, entry = heapq.heappop(heap)
            if entry.queued:
                self._levels[entry.level].main.remove(entry)
                entry.queued = False
                self._size -= 1
                rejected.append(entry)
        return rejected

    # ------------------------------------------------------------------------------ batch formation
    def _candidates(self, now: int) -> Iterator[tuple[Entry, deque[Entry]]]:
        """Queued entries in batching order, each with the deque it sits at the front of once the ones
        before it are taken. Expired DELAY-policy entries met on the way move behind their level."""
        for number in self._order:
            level = self._levels[number]
            main = level.main
            index = 0
            while index < len(main):
                entry = main[index]
                if entry.deadline_ns and now > entry.deadline_ns:
                    # Only DELAY-policy entries can still be here expired: REJECT ones were taken out.
                    del main[index]
                    entry.delayed = True
                    level.delayed.append(entry)
                    continue
                yield entry, main
                index += 1
            for entry in level.delayed:
                yield entry, level.delayed

    def form(self, now: int, *, flush: bool = False) -> Formed:
        """Decide what to execute at ``now`` on a free instance (Triton's GetDynamicBatch).

        ``flush`` sends whatever is pending without waiting for the queue delay (used while closing).
        """
        rejected = self.reject_expired(now)
        settings = self._settings
        max_batch = settings.max_batch_size
        preferred = settings.preferred_batch_sizes
        max_preferred = settings.max_preferred_batch_size
        pending: list[tuple[Entry, deque[Entry]]] = []
        pending_size = 0
        best = 0  # number of pending entries making the best batch found so far (0 = none)
        send_now = False
        key: Hashable | None = None
        oldest_ns = 0
        closest_timeout_ns = 0
        for entry, container in self._candidates(now):
            size = entry.batch_size
            if pending:
                if pending_size + size > max_preferred and best == 0:
                    best = len(pending)
                if pending_size + size > max_batch or entry.key != key:
                    send_now = True
                    break
            else:
                key = entry.key
                oldest_ns = entry.enqueue_ns
            pending.append((entry, container))
            pending_size += size
            oldest_ns = min(oldest_ns, entry.enqueue_ns)
            if entry.deadline_ns and not entry.delayed:
                closest_timeout_ns = (
                    min(closest_timeout_ns, entry.deadline_ns) if closest_timeout_ns else entry.deadline_ns
                )
            if pending_size in preferred:
                best = len(pending)
        if not pending:
            return Formed([], 0, rejected)

        delay_ns = settings.max_queue_delay_ns
        waited_ns = now - oldest_ns
        delay_exceeded = flush or (delay_ns != 0 and waited_ns >= delay_ns)
        if best and not delay_exceeded:
            take = best
        elif send_now or pending_size >= max_preferred or delay_exceeded or delay_ns == 0:
            take = len(pending)
        else:
            wait_ns = delay_ns - waited_ns
            if closest_timeout_ns:
                wait_ns = min(wait_ns, closest_timeout_ns - now) if now <= closest_timeout_ns else 0
            return Formed([], max(wait_ns, _MIN_WAIT_NS), rejected)

        batch = []
        for entry, container in pending[:take]:
            taken = container.popleft()
            assert taken is entry, "batch formation must take a prefix of the queue"
            entry.queued = False
            batch.append(entry)
        self._size -= take
        return Formed(batch, 0, rejected)
