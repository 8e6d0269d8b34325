"""``MetricsSinkConformance``: the tests every metrics sink inherits.

Provide the fixture ``metrics_sink`` (a fresh sink per test; if its ``start`` serves something, give it a
free port or port 0)::

    class TestMySink(MetricsSinkConformance):
        @pytest.fixture
        def metrics_sink(self):
            return MySink(service=None, options={"port": 0})
"""

from __future__ import annotations

import time
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings

from tritium._base.errors import FailureReason
from tritium._base.events import (
    BatchExecuted,
    Event,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)
from tritium.abc import MetricsSink
from tritium.testing.strategies import events

__all__ = ["MetricsSinkConformance", "typical_events"]


def typical_events(model: str = "m", version: str = "1") -> list[Event]:
    """One event of every type (and every failure reason), with ordinary values."""
    ok = RequestCompleted(model, version, True, None, 1, 2_000_000, 100_000, 50_000, 1_500_000, 50_000)
    failed = [
        RequestCompleted(model, version, False, reason, 1, 1_000_000, 1_000_000, 0, 0, 0) for reason in FailureReason
    ]
    return [
        ModelLoaded(model, version, 0.25),
        QueueSizeChanged(model, version, 3),
        ok,
        *failed,
        BatchExecuted(model, version, 8, 4),
        QueueSizeChanged(model, version, 0),
        ModelUnloaded(model, version),
    ]


class MetricsSinkConformance:
    """Inherited tests of a :class:`tritium.MetricsSink`: accepts every event type, never raises on odd
    values, is fast (``max_seconds_per_10k_events``, default 1.0, generous for shared CI machines), starts
    and stops cleanly."""

    max_seconds_per_10k_events: ClassVar[float] = 1.0

    @pytest.fixture
    def metrics_sink(self) -> MetricsSink:
        """A fresh, not yet started sink."""
        pytest.fail(f"{type(self).__name__} must provide the fixture 'metrics_sink'")

    def test_is_a_metrics_sink(self, metrics_sink: MetricsSink) -> None:
        assert isinstance(metrics_sink, MetricsSink)

    def test_handles_every_event_type(self, metrics_sink: MetricsSink) -> None:
        for event in typical_events():
            metrics_sink.handle(event)

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(event=events(odd=True))
    def test_odd_values_never_raise(self, metrics_sink: MetricsSink, event: Event) -> None:
        metrics_sink.handle(event)

    def test_handle_is_fast(self, metrics_sink: MetricsSink) -> None:
        sample = typical_events() + typical_events("other", "2")
        for event in sample:  # warm up (first-seen labels may allocate)
            metrics_sink.handle(event)
        stream = (sample * (10_000 // len(sample) + 1))[:10_000]
        start = time.perf_counter()
        for event in stream:
            metrics_sink.handle(event)
        elapsed = time.perf_counter() - start
        assert elapsed < self.max_seconds_per_10k_events, (
            f"handling 10k events took {elapsed:.3f} s: handle() must not block or do I/O"
        )

    @pytest.mark.asyncio
    async def test_start_handle_stop(self, metrics_sink: MetricsSink) -> None:
        await metrics_sink.start()
        try:
            for event in typical_events():
                metrics_sink.handle(event)
        finally:
            await metrics_sink.stop()

    @pytest.mark.asyncio
    async def test_stop_twice_is_safe(self, metrics_sink: MetricsSink) -> None:
        await metrics_sink.start()
        await metrics_sink.stop()
        await metrics_sink.stop()

    @pytest.mark.asyncio
    async def test_events_before_start_and_after_stop_are_accepted(self, metrics_sink: MetricsSink) -> None:
        metrics_sink.handle(typical_events()[0])
        await metrics_sink.start()
        await metrics_sink.stop()
        for event in typical_events():
            metrics_sink.handle(event)
