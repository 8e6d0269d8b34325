"""The sink: events to Triton's values, metric sets per --metrics-config, labels, system gauges, HTTP."""

from __future__ import annotations

import math
import types
from typing import Any

import aiohttp
import pytest
from tritium_metrics_prometheus import PrometheusSink
from tritium_metrics_prometheus._families import EXPORTED_NAMES, FAMILY_ORDER
from tritium_metrics_prometheus._system import CpuReader, GpuReader

from tritium import (
    BatchExecuted,
    FailureReason,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)

MS = 1_000_000


def ok(model: str = "simple", version: str = "1", batch: int = 1, request_ns: int = 2 * MS) -> RequestCompleted:
    return RequestCompleted(model, version, True, None, batch, request_ns, 500_999, 1_999, 1_000_500, 999)


def failed(reason: FailureReason, model: str = "simple", version: str = "1") -> RequestCompleted:
    return RequestCompleted(model, version, False, reason, 1, 3 * MS, 3 * MS, 0, 0, 0)


def sink_with(config: list[str] | None = None, service: Any = None, **options: Any) -> PrometheusSink:
    return PrometheusSink(
        service, {"allow_cpu_metrics": False, "allow_gpu_metrics": False, "metrics_config": config or [], **options}
    )


def test_a_loaded_model_exports_zero_valued_series(prom: Any) -> None:
    sink = sink_with()
    sink.handle(ModelLoaded("simple", "1", 0.125))
    text = sink.render()
    labels = {"model": "simple", "version": "1"}
    for name in (
        "nv_inference_request_success",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
    ):
        assert prom.value(text, name, **labels) == 0, name
    for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
        assert prom.value(text, "nv_inference_request_failure", reason=reason, **labels) == 0
    assert prom.value(text, "nv_model_load_duration_secs", **labels) == 0.125
    assert 'nv_inference_request_failure{model="simple",reason="BACKEND",version="1"} 0\n' in text
    # no summary or histogram unless asked for
    assert "summary" not in text and "histogram" not in text


def test_events_add_up_like_triton(prom: Any) -> None:
    sink = sink_with()
    sink.handle(ModelLoaded("simple", "1", 0.5))
    for _ in range(3):
        sink.handle(ok(batch=4))
    sink.handle(BatchExecuted("simple", "1", 12, 3))
    sink.handle(failed(FailureReason.REJECTED))
    sink.handle(failed(FailureReason.CANCELED))
    sink.handle(failed(FailureReason.BACKEND))
    sink.handle(QueueSizeChanged("simple", "1", 7))
    text = sink.render()
    labels = {"model": "simple", "version": "1"}
    assert prom.value(text, "nv_inference_request_success", **labels) == 3
    assert prom.value(text, "nv_inference_count", **labels) == 12  # batch sizes add up
    assert prom.value(text, "nv_inference_exec_count", **labels) == 1  # a batch executes once
    # whole microseconds per request, as Triton divides: 2000, 500, 1, 1000, 0 us each
    assert prom.value(text, "nv_inference_request_duration_us", **labels) == 6000
    assert prom.value(text, "nv_inference_queue_duration_us", **labels) == 1500
    assert prom.value(text, "nv_inference_compute_input_duration_us", **labels) == 3
    assert prom.value(text, "nv_inference_compute_infer_duration_us", **labels) == 3000
    assert prom.value(text, "nv_inference_compute_output_duration_us", **labels) == 0
    for reason, count in (("REJECTED", 1), ("CANCELED", 1), ("BACKEND", 1), ("OTHER", 0)):
        assert prom.value(text, "nv_inference_request_failure", reason=reason, **labels) == count
    assert prom.value(text, "nv_inference_pending_request_count", **labels) == 7


def test_families_come_in_triton_order_with_triton_help() -> None:
    sink = sink_with(["summary_latencies=true", "histogram_latencies=true"])
    sink.handle(ModelLoaded("simple", "1", 0.5))
    sink.handle(ok())
    text = sink.render()
    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    names = [line.split()[2] for line in helps]
    expected = [f.name for f in FAMILY_ORDER if f.name in names]
    assert names == expected
    assert set(names) <= EXPORTED_NAMES
    for family in FAMILY_ORDER:
        if family.name in names:
            assert f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.type}\n" in text
    assert "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes" in text


def test_counter_latencies_false_drops_only_the_latency_counters(prom: Any) -> None:
    sink = sink_with(["counter_latencies=false"])
    sink.handle(ModelLoaded("simple", "1", 0.5))
    sink.handle(ok())
    text = sink.render()
    assert "_duration_us" not in text
    assert prom.value(text, "nv_inference_request_success", model="simple", version="1") == 1


def test_summaries_with_default_and_custom_quantiles(prom: Any) -> None:
    sink = sink_with(["summary_latencies=true"])
    sink.handle(ModelLoaded("simple", "1", 0.5))
    text = sink.render()
    quantiles = [
        s[1] for s in prom.samples(text) if s[0] == "nv_inference_request_summary_us"
    ]
    assert sorted(dict(q)["quantile"] for q in quantiles) == ["0.5", "0.9", "0.95", "0.99", "0.999"]
    assert 'nv_inference_queue_summary_us{model="simple",version="1",quantile="0.5"} Nan\n' in text
    for duration_ms in (1, 2, 3, 4):
        sink.handle(ok(request_ns=duration_ms * MS))
    sink.handle(failed(FailureReason.BACKEND))  # failures are not observed
    text = sink.render()
    labels = {"model": "simple", "version": "1"}
    assert prom.value(text, "nv_inference_request_summary_us_count", **labels) == 4
    assert prom.value(text, "nv_inference_request_summary_us_sum", **labels) == 10_000
    assert prom.value(text, "nv_inference_request_summary_us", quantile="0.5", **labels) in (2000, 3000)
    assert prom.value(text, "nv_inference_compute_infer_summary_us_count", **labels) == 4

    custom = sink_with(["summary_latencies=true", "summary_quantiles=0.25:0.01,0.75:0.01"])
    custom.handle(ModelLoaded("simple", "1", 0.5))
    text = custom.render()
    assert 'quantile="0.25"' in text and 'quantile="0.75"' in text and 'quantile="0.5"' not in text


def test_first_response_histogram(prom: Any) -> None:
    sink = sink_with(["histogram_latencies=true"])
    sink.handle(ModelLoaded("simple", "1", 0.5))
    for ms in (50, 100, 101, 600, 9000):
        sink.handle(ok(request_ns=ms * MS + 999_999))  # whole milliseconds: 50, 100, 101, 600, 9000
    sink.handle(failed(FailureReason.REJECTED))  # 3 ms: an error response is a response too
    text = sink.render()
    labels = {"model": "simple", "version": "1"}
    name = "nv_inference_first_response_histogram_ms"
    assert prom.value(text, f"{name}_count", **labels) == 6
    assert prom.value(text, f"{name}_sum", **labels) == 50 + 100 + 101 + 600 + 9000 + 3
    buckets = {le: prom.value(text, f"{name}_bucket", le=le, **labels) for le in ("100", "500", "2000", "5000")}
    assert buckets == {"100": 3, "500": 4, "2000": 5, "5000": 5}
    assert prom.value(text, f"{name}_bucket", le="+Inf", **labels) == 6
    assert f'{name}_bucket{{model="simple",version="1",le="+Inf"}} 6\n' in text


def test_metric_tags_and_histogram_buckets_from_the_model_config(prom: Any) -> None:
    service = prom.FakeService(
        {
            ("tagged", "2"): """
                name: "tagged"
                metric_tags { key: "team" value: "vision" }
                model_metrics { metric_control {
                    metric_identifier { family: "nv_inference_first_response_histogram_ms" }
                    histogram_options { buckets: [ 1, 10 ] } } }
            """
        }
    )
    service.ready = False  # not ready when loaded: resolved at the next scrape
    sink = sink_with(["histogram_latencies=true"], service=service)
    sink.handle(ModelLoaded("tagged", "2", 0.5))
    service.ready = True
    text = sink.render()
    assert prom.value(text, "nv_inference_request_success", _team="vision", model="tagged", version="2") == 0
    assert 'nv_inference_request_success{_team="vision",model="tagged",version="2"} 0\n' in text
    sink.handle(ok(model="tagged", version="2", request_ns=5 * MS))
    text = sink.render()
    labels = {"_team": "vision", "model": "tagged", "version": "2"}
    assert prom.value(text, "nv_inference_first_response_histogram_ms_bucket", le="1", **labels) == 0
    assert prom.value(text, "nv_inference_first_response_histogram_ms_bucket", le="10", **labels) == 1


def test_models_are_sorted_and_unloaded_models_disappear(prom: Any) -> None:
    sink = sink_with()
    for model, version in (("zeta", "1"), ("alpha", "3"), ("alpha", "10")):
        sink.handle(ModelLoaded(model, version, 0.1))
    text = sink.render()
    lines = [line for line in text.splitlines() if line.startswith("nv_inference_request_success{")]
    assert lines == [
        'nv_inference_request_success{model="alpha",version="10"} 0',
        'nv_inference_request_success{model="alpha",version="3"} 0',
        'nv_inference_request_success{model="zeta",version="1"} 0',
    ]
    sink.handle(ModelUnloaded("alpha", "3"))
    assert 'model="alpha",version="3"' not in sink.render()
    sink.handle(ok(model="alpha", version="3"))  # a late event does not bring the series back
    assert 'model="alpha",version="3"' not in sink.render()
    sink.handle(ModelLoaded("alpha", "3", 0.2))  # a reload does
    assert 'nv_inference_request_success{model="alpha",version="3"} 0' in sink.render()


def test_cpu_metrics_from_proc(prom: Any, tmp_path: Any) -> None:
    proc = prom.fake_proc(tmp_path / "proc", busy=100, idle=100)
    sink = PrometheusSink(
        None,
        {"allow_cpu_metrics": True, "allow_gpu_metrics": False},
        cpu_reader=lambda: CpuReader(proc),
    )
    sink._cpu = CpuReader(proc)
    prom.fake_proc(proc, busy=175, idle=125, total_kb=2000, available_kb=500)
    sink.poll()
    text = sink.render()
    assert prom.value(text, "nv_cpu_utilization") == 0.75  # 75 busy of 100 jiffies
    assert prom.value(text, "nv_cpu_memory_total_bytes") == 2000 * 1024
    assert prom.value(text, "nv_cpu_memory_used_bytes") == 1500 * 1024
    assert "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]\n# TYPE nv_cpu_utilization gauge\n" in text


def test_gpu_metrics_through_nvml(prom: Any) -> None:
    energy = [1_000_000.0]

    class Handle:
        pass

    handle = Handle()
    nvml = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: handle,
        nvmlDeviceGetUUID=lambda h: b"GPU-1234",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=42),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80 * 2**30, used=2**30),
        nvmlDeviceGetPowerUsage=lambda h: 123_456,
        nvmlDeviceGetPowerManagementLimit=lambda h: 700_000,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: energy[0],
    )
    sink = PrometheusSink(None, {"allow_cpu_metrics": False, "allow_gpu_metrics": True})
    sink._gpu = GpuReader(nvml)
    assert sink._gpu.available
    sink.poll()
    energy[0] += 5_500.0  # mJ
    sink.poll()
    text = sink.render()
    gpu = {"gpu_uuid": "GPU-1234"}
    assert prom.value(text, "nv_gpu_utilization", **gpu) == 0.42
    assert prom.value(text, "nv_gpu_memory_total_bytes", **gpu) == 80 * 2**30
    assert prom.value(text, "nv_gpu_memory_used_bytes", **gpu) == 2**30
    assert math.isclose(prom.value(text, "nv_gpu_power_usage", **gpu), 123.456)
    assert prom.value(text, "nv_gpu_power_limit", **gpu) == 700
    assert prom.value(text, "nv_energy_consumption", **gpu) == 5.5


def test_no_gpu_means_no_gpu_families() -> None:
    def broken_init() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    reader = GpuReader(types.SimpleNamespace(nvmlInit=broken_init))
    assert not reader.available


def test_each_sink_has_its_own_registry() -> None:
    first, second = sink_with(), sink_with()
    first.handle(ModelLoaded("only_in_first", "1", 0.1))
    assert first.registry is not second.registry
    assert "only_in_first" not in second.render()


def test_bad_metrics_config_is_a_config_error() -> None:
    from tritium import ConfigError

    with pytest.raises(ConfigError, match=r"--metrics-config option format is <setting>=<value>\. Got nope"):
        sink_with(["nope"])


async def test_serves_metrics_over_http(tmp_path: Any) -> None:
    sink = PrometheusSink(None, {"port": 0, "address": "127.0.0.1", "allow_gpu_metrics": False, "interval_ms": 50})
    sink.handle(ModelLoaded("simple", "1", 0.5))
    await sink.start()
    try:
        base = f"http://127.0.0.1:{sink.bound_port}"
        async with aiohttp.ClientSession() as session:
            for path in ("/metrics", "/metrics/"):
                async with session.get(base + path) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
                    body = await response.text()
                    assert 'nv_inference_request_success{model="simple",version="1"} 0' in body
                    assert "nv_cpu_utilization " in body
            async with session.get(base + "/other") as response:
                assert response.status == 200 and await response.text() == ""
            async with session.post(base + "/metrics") as response:
                assert response.status == 405
                assert await response.json() == {"error": "Method Not Allowed"}
    finally:
        await sink.stop()
