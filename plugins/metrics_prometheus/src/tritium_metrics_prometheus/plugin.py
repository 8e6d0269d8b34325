"""Entry point ``metrics_prometheus``: registers the ``prometheus`` metrics sink and its flags.

The flags are tritonserver's: ``--allow-metrics`` switches the sink, ``--metrics-port`` (8002),
``--metrics-address``, ``--metrics-interval-ms`` (2000), ``--allow-cpu-metrics``, ``--allow-gpu-metrics`` and
the repeatable ``--metrics-config <setting>=<value>``. Importing this module imports neither aiohttp nor
prometheus_client: the factory does, when the server creates the sink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tritium import InferenceService, MetricsSink, MetricsSinkSpec, OptionSpec, hookimpl

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("port", int, 8002, "The port reporting Prometheus metrics (GET /metrics).", flag="--metrics-port"),
    OptionSpec(
        "address", str, "0.0.0.0", "The address for the metrics server to bind to.", flag="--metrics-address"
    ),
    OptionSpec(
        "interval_ms",
        int,
        2000,
        "Milliseconds between two readings of the CPU and GPU metrics.",
        flag="--metrics-interval-ms",
    ),
    OptionSpec(
        "allow_cpu_metrics", bool, True, "Export CPU utilization and memory (nv_cpu_*).", flag="--allow-cpu-metrics"
    ),
    OptionSpec(
        "allow_gpu_metrics",
        bool,
        True,
        "Export GPU metrics (nv_gpu_*, nv_energy_consumption) through NVML when a GPU is present.",
        flag="--allow-gpu-metrics",
    ),
    OptionSpec(
        "metrics_config",
        list,
        [],
        "A metrics setting <setting>=<value>: counter_latencies=false, summary_latencies=true, "
        "summary_quantiles=<q>:<error>[,...], histogram_latencies=true.",
        flag="--metrics-config",
    ),
)


def create_sink(service: InferenceService, options: Mapping[str, Any]) -> MetricsSink:
    """Factory named by the spec; one sink per server."""
    from tritium_metrics_prometheus._sink import PrometheusSink

    return PrometheusSink(service, options)


@hookimpl
def tritium_register_metrics_sinks() -> Sequence[MetricsSinkSpec]:
    return [MetricsSinkSpec(name="prometheus", factory=create_sink, options=OPTIONS, enable_flag="--allow-metrics")]
