"""Per-model-version metric state, updated from kernel events with plain float arithmetic.

A :class:`ModelSeries` holds every per-model value Triton reports for one model version. It is created
when the version loads (so its 0-valued series are exported at once, as Triton does) and dropped when it
unloads. Updates follow Triton's ``InferenceStatsAggregator``: a success adds 1 request, its batch size of
inferences and its durations in whole microseconds; a failure only counts under its reason; an execution
counts once whatever its batch size.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from tritium import FailureReason, RequestCompleted
from tritium_metrics_prometheus._config import MetricsConfig
from tritium_metrics_prometheus._families import DEFAULT_HISTOGRAM_BUCKETS_MS, FAILURE_REASONS
from tritium_metrics_prometheus._quantiles import WindowedQuantiles

SUMMARY_KEYS = ("request", "queue", "compute_input", "compute_infer", "compute_output")


class Histogram:
    """A Prometheus histogram: per-bucket counts (upper bounds ``bounds``, plus +Inf), count and sum."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(float(b) for b in bounds))
        self.buckets = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) per finite bucket."""
        total = 0
        out = []
        for bound, count in zip(self.bounds, self.buckets, strict=False):
            total += count
            out.append((bound, total))
        return out


class Summary:
    """A Prometheus summary: count, sum, and windowed quantile estimates."""

    __slots__ = ("count", "quantiles", "sum", "targets")

    def __init__(self, targets: Sequence[tuple[float, float]], clock: Callable[[], float] | None = None) -> None:
        self.targets = tuple(targets)
        self.count = 0
        self.sum = 0.0
        self.quantiles = WindowedQuantiles(targets) if clock is None else WindowedQuantiles(targets, clock=clock)

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self.quantiles.insert(value)

    def values(self) -> list[tuple[float, float]]:
        return [(q, self.quantiles.query(q)) for q, _ in self.targets]


class ModelSeries:
    """Everything exported for one model version. ``tags`` are the config's ``metric_tags`` (exported as
    ``_<key>`` labels), None until known; ``buckets`` the first-response histogram bounds."""

    __slots__ = (
        "compute_infer_us",
        "compute_input_us",
        "compute_output_us",
        "exec_count",
        "failures",
        "histogram",
        "inference_count",
        "load_seconds",
        "model",
        "pending",
        "queue_us",
        "request_us",
        "resolved",
        "success",
        "summaries",
        "tags",
        "version",
    )

    def __init__(self, model: str, version: str, config: MetricsConfig) -> None:
        self.model = model
        self.version = version
        self.tags: dict[str, str] = {}
        self.resolved = False
        self.success = 0.0
        self.failures = dict.fromkeys(FAILURE_REASONS, 0.0)
        self.inference_count = 0.0
        self.exec_count = 0.0
        self.request_us = 0.0
        self.queue_us = 0.0
        self.compute_input_us = 0.0
        self.compute_infer_us = 0.0
        self.compute_output_us = 0.0
        self.pending = 0.0
        self.load_seconds = 0.0
        self.histogram: Histogram | None = (
            Histogram(DEFAULT_HISTOGRAM_BUCKETS_MS) if config.histogram_latencies else None
        )
        self.summaries: dict[str, Summary] | None = (
            {key: Summary(config.quantiles) for key in SUMMARY_KEYS} if config.summary_latencies else None
        )

    def labels(self) -> dict[str, str]:
        """The series' labels, sorted by name as Triton (a std::map) orders them."""
        labels = {f"_{key}": value for key, value in self.tags.items()}
        labels["model"] = self.model
        labels["version"] = self.version
        return dict(sorted(labels.items()))

    def set_buckets(self, bounds: Sequence[float]) -> None:
        """Per-model histogram bounds (``model_metrics``), applied before anything is observed."""
        if self.histogram is not None and self.histogram.count == 0 and bounds:
            self.histogram = Histogram(bounds)

    def completed(self, event: RequestCompleted) -> None:
        if self.histogram is not None:
            self.histogram.observe(event.request_ns // 1_000_000)  # whole ms, as Triton divides
        if not event.success:
            reason = (event.reason or FailureReason.OTHER).value
            self.failures[reason] = self.failures.get(reason, 0.0) + 1.0
            return
        self.success += 1.0
        self.inference_count += event.batch_size
        request_us = event.request_ns // 1000
        queue_us = event.queue_ns // 1000
        input_us = event.compute_input_ns // 1000
        infer_us = event.compute_infer_ns // 1000
        output_us = event.compute_output_ns // 1000
        self.request_us += request_us
        self.queue_us += queue_us
        self.compute_input_us += input_us
        self.compute_infer_us += infer_us
        self.compute_output_us += output_us
        summaries = self.summaries
        if summaries is not None:
            summaries["request"].observe(request_us)
            summaries["queue"].observe(queue_us)
            summaries["compute_input"].observe(input_us)
            summaries["compute_infer"].observe(infer_us)
            summaries["compute_output"].observe(output_us)
