"""Summary quantiles: the CKMS estimate stays within its error bound, and the window forgets old data."""

from __future__ import annotations

import bisect
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_metrics_prometheus._quantiles import TargetedQuantiles, WindowedQuantiles

TARGETS = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))


def test_empty_is_nan() -> None:
    assert math.isnan(TargetedQuantiles(TARGETS).query(0.5))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 10_000), min_size=1, max_size=3000))
def test_estimates_have_a_rank_within_the_error_bound(values: list[int]) -> None:
    stream = TargetedQuantiles(TARGETS)
    for value in values:
        stream.insert(float(value))
    ordered = sorted(values)
    n = len(ordered)
    for q, error in TARGETS:
        estimate = stream.query(q)
        assert estimate in ordered
        # the estimate's rank range (ties) must meet [q*n - error*n - 1, q*n + error*n + 1]
        low = bisect.bisect_left(ordered, estimate)
        high = bisect.bisect_right(ordered, estimate)
        slack = error * n + 1
        assert low <= q * n + slack and high >= q * n - slack, (q, estimate, low, high, n)


def test_extremes_are_exact() -> None:
    stream = TargetedQuantiles(((0.0, 0.01), (1.0, 0.01)))
    for value in range(1000, 0, -1):
        stream.insert(float(value))
    assert stream.query(0.0) == 1.0
    assert stream.query(1.0) == 1000.0


def test_window_forgets_observations_older_than_max_age() -> None:
    now = [0.0]
    window = WindowedQuantiles(TARGETS, max_age_s=60, buckets=5, clock=lambda: now[0])
    for _ in range(100):
        window.insert(10.0)
    now[0] = 30.0
    for _ in range(100):
        window.insert(1000.0)
    assert window.query(0.5) in (10.0, 1000.0)
    assert window.query(0.0) == 10.0 and window.query(1.0) == 1000.0
    now[0] = 61.0  # the first observations have left the window
    assert window.query(0.5) == 1000.0
    now[0] = 500.0
    assert math.isnan(window.query(0.5))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=4000), spread_s=st.floats(0, 59))
def test_windowed_estimate_is_within_twice_the_error(values: list[float], spread_s: float) -> None:
    now = [0.0]
    window = WindowedQuantiles(TARGETS, clock=lambda: now[0])
    for i, value in enumerate(values):
        now[0] = spread_s * i / len(values)
        window.insert(value)
    ordered = sorted(values)
    n = len(ordered)
    for q, error in TARGETS:
        estimate = window.query(q)
        low = bisect.bisect_left(ordered, estimate)
        high = bisect.bisect_right(ordered, estimate)
        slack = 2 * error * n + 2
        assert low <= q * n + slack and high >= q * n - slack, (q, estimate, low, high, n)
