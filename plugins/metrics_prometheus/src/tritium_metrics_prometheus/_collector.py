"""The sink's prometheus_client collector: turns the sink's state into metric families at scrape time.

It is registered in the sink's own :class:`prometheus_client.CollectorRegistry` (one per sink, never the
module-level default), so several servers in one process never share metrics. Families come out in Triton's
order with Triton's label sets; per-model series are sorted by labels, as Triton's registry sorts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from tritium_metrics_prometheus import _families as F
from tritium_metrics_prometheus._exposition import format_value

if TYPE_CHECKING:
    from tritium_metrics_prometheus._config import SinkSettings
    from tritium_metrics_prometheus._series import ModelSeries
    from tritium_metrics_prometheus._system import CpuReading, GpuReading


class SinkState:
    """What the sink has recorded: per-model series and the latest system readings."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ModelSeries] = {}
        self.cpu: CpuReading | None = None
        self.gpus: list[GpuReading] = []


class TritonCollector:
    """A prometheus_client collector over a :class:`SinkState`."""

    def __init__(
        self, state: SinkState, settings: SinkSettings, resolve: Callable[[ModelSeries], None] | None = None
    ) -> None:
        self._state = state
        self._settings = settings
        self._resolve = resolve

    def describe(self) -> list[Metric]:
        return []  # families depend on what is loaded: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        families = {family.name: _metric(family) for family in F.FAMILY_ORDER}
        self._per_model(families)
        self._server_wide(families)
        yield from (m for m in families.values() if m.samples)

    # ------------------------------------------------------------------------------------ per model
    def _per_model(self, families: Mapping[str, Metric]) -> None:
        config = self._settings.metrics
        series_list = []
        for series in self._state.models.values():
            if not series.resolved and self._resolve is not None:
                self._resolve(series)
            series_list.append((tuple(series.labels().items()), series))
        series_list.sort(key=lambda item: item[0])
        success = families[F.REQUEST_SUCCESS.name]
        count = families[F.INFERENCE_COUNT.name]
        execs = families[F.EXEC_COUNT.name]
        pending = families[F.PENDING_REQUESTS.name]
        load = families[F.MODEL_LOAD_DURATION.name]
        failures: list[tuple[tuple[tuple[str, str], ...], dict[str, str], float]] = []
        for _, series in series_list:
            labels = series.labels()
            success.add_sample(F.REQUEST_SUCCESS.name, labels, series.success)
            for reason, value in series.failures.items():
                with_reason = dict(sorted({**labels, "reason": reason}.items()))
                failures.append((tuple(with_reason.items()), with_reason, value))
            count.add_sample(F.INFERENCE_COUNT.name, labels, series.inference_count)
            execs.add_sample(F.EXEC_COUNT.name, labels, series.exec_count)
            if config.counter_latencies:
                for family, value in (
                    (F.REQUEST_DURATION, series.request_us),
                    (F.QUEUE_DURATION, series.queue_us),
                    (F.COMPUTE_INPUT_DURATION, series.compute_input_us),
                    (F.COMPUTE_INFER_DURATION, series.compute_infer_us),
                    (F.COMPUTE_OUTPUT_DURATION, series.compute_output_us),
                ):
                    families[family.name].add_sample(family.name, labels, value)
            pending.add_sample(F.PENDING_REQUESTS.name, labels, series.pending)
            load.add_sample(F.MODEL_LOAD_DURATION.name, labels, series.load_seconds)
            if series.histogram is not None:
                _add_histogram(families[F.FIRST_RESPONSE_HISTOGRAM.name], labels, series)
            if series.summaries is not None:
                for family, key in zip(F.SUMMARIES, ("request", "queue", "compute_input", "compute_infer",
                                                     "compute_output"), strict=True):
                    summary = series.summaries[key]
                    metric = families[family.name]
                    metric.add_sample(f"{family.name}_count", labels, summary.count)
                    metric.add_sample(f"{family.name}_sum", labels, summary.sum)
                    for quantile, value in summary.values():
                        metric.add_sample(family.name, {**labels, "quantile": format_value(quantile)}, value)
        failure = families[F.REQUEST_FAILURE.name]
        for _, labels, value in sorted(failures, key=lambda item: item[0]):
            failure.add_sample(F.REQUEST_FAILURE.name, labels, value)

    # ---------------------------------------------------------------------------------- server wide
    def _server_wide(self, families: Mapping[str, Metric]) -> None:
        families[F.PINNED_MEMORY_TOTAL.name].add_sample(F.PINNED_MEMORY_TOTAL.name, {}, 0.0)
        families[F.PINNED_MEMORY_USED.name].add_sample(F.PINNED_MEMORY_USED.name, {}, 0.0)
        cpu = self._state.cpu
        if cpu is not None:
            families[F.CPU_UTILIZATION.name].add_sample(F.CPU_UTILIZATION.name, {}, cpu.utilization)
            families[F.CPU_MEMORY_TOTAL.name].add_sample(F.CPU_MEMORY_TOTAL.name, {}, cpu.memory_total)
            families[F.CPU_MEMORY_USED.name].add_sample(F.CPU_MEMORY_USED.name, {}, cpu.memory_used)
        for gpu in sorted(self._state.gpus, key=lambda g: g.uuid):
            labels = {"gpu_uuid": gpu.uuid}
            for family, value in (
                (F.GPU_UTILIZATION, gpu.utilization),
                (F.GPU_MEMORY_TOTAL, gpu.memory_total),
                (F.GPU_MEMORY_USED, gpu.memory_used),
                (F.GPU_POWER_USAGE, gpu.power_usage),
                (F.GPU_POWER_LIMIT, gpu.power_limit),
                (F.GPU_ENERGY, gpu.energy_joules),
            ):
                families[family.name].add_sample(family.name, labels, value)


def _metric(family: F.Family) -> Metric:
    return Metric(family.name, family.help, family.type)


def _add_histogram(metric: Metric, labels: dict[str, str], series: ModelSeries) -> None:
    histogram = series.histogram
    assert histogram is not None
    name = F.FIRST_RESPONSE_HISTOGRAM.name
    metric.add_sample(f"{name}_count", labels, histogram.count)
    metric.add_sample(f"{name}_sum", labels, histogram.sum)
    for bound, cumulative in histogram.cumulative():
        metric.add_sample(f"{name}_bucket", {**labels, "le": format_value(bound)}, cumulative)
    metric.add_sample(f"{name}_bucket", {**labels, "le": "+Inf"}, histogram.count)
