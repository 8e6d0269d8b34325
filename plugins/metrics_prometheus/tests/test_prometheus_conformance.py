"""The kernel's conformance kit run against the Prometheus sink, and the plugin's packaging checks."""

from __future__ import annotations

import pytest
from tritium_metrics_prometheus import PrometheusSink, plugin

from tritium import MetricsSink
from tritium.testing import MetricsSinkConformance, PluginPackagingConformance


class TestPrometheusSinkConformance(MetricsSinkConformance):
    @pytest.fixture
    def metrics_sink(self) -> MetricsSink:
        return PrometheusSink(None, {"port": 0, "address": "127.0.0.1", "allow_gpu_metrics": False})


def test_handle_stays_cheap_with_summaries_and_histograms() -> None:
    """The kit's speed check, with every optional metric on (the kit class can be inherited only once per
    process: its hypothesis test refuses several executors)."""
    import time

    from tritium.testing.metrics import typical_events

    sink = PrometheusSink(
        None,
        {"allow_gpu_metrics": False, "metrics_config": ["summary_latencies=true", "histogram_latencies=true"]},
    )
    sample = typical_events() + typical_events("other", "2")
    stream = (sample * (20_000 // len(sample) + 1))[:20_000]
    start = time.perf_counter()
    for event in stream:
        sink.handle(event)
    assert time.perf_counter() - start < 2.0
    for event in typical_events()[:3]:  # loaded again, one success
        sink.handle(event)
    assert 'nv_inference_request_summary_us_count{model="m",version="1"} 1' in sink.render()


class TestPackaging(PluginPackagingConformance):
    distribution = "tritium-metrics-prometheus"
    entry_point = "metrics_prometheus"


def test_spec_declares_tritonservers_flags() -> None:
    (spec,) = plugin.tritium_register_metrics_sinks()
    assert spec.name == "prometheus"
    assert spec.enable_flag == "--allow-metrics"
    flags = {option.name: (option.flag, option.type, option.default) for option in spec.options}
    assert flags == {
        "port": ("--metrics-port", int, 8002),
        "address": ("--metrics-address", str, "0.0.0.0"),
        "interval_ms": ("--metrics-interval-ms", int, 2000),
        "allow_cpu_metrics": ("--allow-cpu-metrics", bool, True),
        "allow_gpu_metrics": ("--allow-gpu-metrics", bool, True),
        "metrics_config": ("--metrics-config", list, []),
    }
