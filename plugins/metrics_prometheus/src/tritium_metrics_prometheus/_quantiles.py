"""Streaming quantiles for summaries: targeted-quantile CKMS over a sliding time window.

Triton's summaries (prometheus-cpp) estimate each configured ``quantile:error`` pair with the CKMS algorithm
(Cormode, Korn, Muthukrishnan, Srivastava, "Effective computation of biased quantiles over data streams")
over a window of the last 60 seconds kept as 5 age buckets: every observation goes into all buckets, queries
read the oldest live bucket, and one bucket is reset every 12 seconds. This module does the same, so a
summary's quantiles describe recent latency with bounded memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

_BUFFER = 500  # observations buffered before they are merged into the sample


class TargetedQuantiles:
    """CKMS for a set of targeted quantiles: the estimate of quantile ``q`` has a rank within
    ``error * n`` of ``q * n``.

    Observations are buffered and merged in sorted batches with numpy, so the per-observation cost on the
    request path is a list append.
    """

    __slots__ = ("_buffer", "_count", "_delta", "_errors", "_quantiles", "_values", "_widths")

    def __init__(self, targets: Sequence[tuple[float, float]]) -> None:
        self._quantiles = np.array([float(q) for q, _ in targets])
        self._errors = np.array([float(e) for _, e in targets])
        self._values = np.empty(0)
        self._widths = np.empty(0)
        self._delta = np.empty(0)
        self._count = 0.0
        self._buffer: list[float] = []

    def insert(self, value: float) -> None:
        buffer = self._buffer
        buffer.append(value)
        if len(buffer) >= _BUFFER:
            self.merge(np.sort(np.asarray(buffer, dtype=float)))
            buffer.clear()

    def query(self, q: float) -> float:
        """The estimate of quantile ``q`` (NaN when nothing was observed)."""
        self._flush()
        values = self._values
        if not len(values):
            return math.nan
        target = math.ceil(q * self._count)
        target += math.ceil(float(self._allowed(np.array([float(target)]))[0]) / 2)
        # the first item whose successor's maximal rank passes the target
        ranks = np.cumsum(self._widths)  # rank of each item's upper end
        exceeds = ranks[:-1] + self._widths[1:] + self._delta[1:] > target
        hit = int(np.argmax(exceeds)) if exceeds.any() else len(values) - 1
        return float(values[hit])

    @property
    def count(self) -> float:
        """Observations merged so far (buffered ones excluded)."""
        return self._count

    @property
    def values(self) -> np.ndarray:
        return self._values

    @property
    def widths(self) -> np.ndarray:
        return self._widths

    def reset(self) -> None:
        self._values = np.empty(0)
        self._widths = np.empty(0)
        self._delta = np.empty(0)
        self._buffer.clear()
        self._count = 0.0

    def _allowed(self, ranks: np.ndarray) -> np.ndarray:
        """The invariant f(r, n) for each rank: how much rank uncertainty an item there may carry."""
        n = self._count
        q = self._quantiles[:, None]
        e = self._errors[:, None]
        r = ranks[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            upper = np.where(q > 0, 2.0 * e * r / np.where(q > 0, q, 1.0), np.inf)
            lower = np.where(q < 1, 2.0 * e * (n - r) / np.where(q < 1, 1.0 - q, 1.0), np.inf)
        allowed: np.ndarray = np.minimum(np.where(q * n <= r, upper, lower).min(axis=0), n + 1.0)
        return allowed  # never more than the whole stream

    def _flush(self) -> None:
        if self._buffer:
            self.merge(np.sort(np.asarray(self._buffer, dtype=float)))
            self._buffer.clear()

    def merge(self, batch: np.ndarray) -> None:
        """Merge a sorted batch of observations, then compress."""
        values, widths, delta = self._values, self._widths, self._delta
        self._count += len(batch)
        # where each new value goes (after equal values), and the rank below it
        positions = np.searchsorted(values, batch, side="right")
        below = np.concatenate(([0.0], np.cumsum(widths)))[positions] + np.arange(len(batch))
        inner = (positions > 0) & (positions < len(values))
        new_delta = np.zeros(len(batch))
        if inner.any():
            successor = np.minimum(positions, len(values) - 1)
            by_successor = widths[successor] + delta[successor] - 1.0
            by_invariant = np.floor(self._allowed(below)) - 1.0
            new_delta = np.where(inner, np.maximum(np.minimum(by_invariant, by_successor), 0.0), 0.0)
        self._values = np.insert(values, positions, batch)
        self._widths = np.insert(widths, positions, np.ones(len(batch)))
        self._delta = np.insert(delta, positions, new_delta)
        self._compress()

    def _compress(self) -> None:
        count = len(self._values)
        if count < 3:
            return
        widths = self._widths.tolist()
        delta = self._delta.tolist()
        # An item's rank only depends on the items left of it, which a right-to-left pass never changes.
        allowed = self._allowed(np.concatenate(([0.0], np.cumsum(self._widths)[:-1]))).tolist()
        keep = [True] * count
        right = count - 1  # first and last items are kept: the minimum and maximum stay exact
        for index in range(count - 2, 0, -1):
            if widths[index] + widths[right] + delta[right] <= allowed[index]:
                widths[right] += widths[index]
                keep[index] = False
            else:
                right = index
        mask = np.array(keep)
        self._values = self._values[mask]
        self._widths = np.array(widths)[mask]
        self._delta = self._delta[mask]


class WindowedQuantiles:
    """Quantiles of the observations of the last ``max_age_s`` seconds (prometheus-cpp's default: 60 s in
    5 age buckets of 12 s).

    Each age bucket summarizes only its own 12 seconds (one CKMS insert per observation, not one per bucket
    as prometheus-cpp does); a query combines the live buckets' samples by rank, so its rank error is at
    most the sum of the buckets' errors, i.e. the same ``error * n``. Observations are buffered and merged
    sorted, in batches, so the request path only appends to a list.
    """

    __slots__ = ("_buckets", "_buffer", "_clock", "_current", "_interval", "_last_rotation")

    def __init__(
        self,
        targets: Sequence[tuple[float, float]],
        *,
        max_age_s: float = 60.0,
        buckets: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = [TargetedQuantiles(targets) for _ in range(buckets)]
        self._buffer: list[float] = []
        self._current = 0
        self._clock = clock
        self._interval = max_age_s / buckets
        self._last_rotation = clock()

    def insert(self, value: float) -> None:
        if self._clock() - self._last_rotation > self._interval:
            self._rotate()  # the buffered observations belong to the bucket that is ending
        buffer = self._buffer
        buffer.append(value)
        if len(buffer) >= _BUFFER:
            self._rotate()

    def query(self, q: float) -> float:
        self._rotate()
        live = [b for b in self._buckets if b.count]
        if not live:
            return math.nan
        if len(live) == 1:
            return live[0].query(q)
        values = np.concatenate([b.values for b in live])
        widths = np.concatenate([b.widths for b in live])
        order = np.argsort(values, kind="stable")
        ranks = np.cumsum(widths[order])
        hit = int(np.searchsorted(ranks, q * ranks[-1], side="left"))
        return float(values[order][min(hit, len(values) - 1)])

    def _rotate(self) -> None:
        """Bring the buckets up to date: buffered observations into the current bucket, then start a new
        bucket (forgetting the one older than the window) every ``max_age_s / buckets`` seconds."""
        if self._buffer:
            self._buckets[self._current].merge(np.sort(np.asarray(self._buffer, dtype=float)))
            self._buffer.clear()
        now = self._clock()
        elapsed = now - self._last_rotation
        if elapsed > self._interval * len(self._buckets):  # idle for a whole window: start afresh
            for bucket in self._buckets:
                bucket.reset()
            self._last_rotation = now
            return
        while elapsed > self._interval:
            self._current = (self._current + 1) % len(self._buckets)
            self._buckets[self._current].reset()
            elapsed -= self._interval
            self._last_rotation += self._interval
