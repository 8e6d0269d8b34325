"""Metrics end to end: a real ``tritium serve`` process, NVIDIA's tritonclient, and a real Prometheus.

* ``/metrics`` lists Triton's per-model series, 0-valued, as soon as the models are loaded;
* after a known load the metrics agree with the statistics extension (tritonclient's
  ``get_inference_statistics``);
* a real Prometheus server (Debian's ``prometheus`` binary, installed by ``make prometheus``) scrapes the
  server and its HTTP API answers the inference count this test caused.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(240)

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


@pytest.fixture(scope="module")
def server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    return tritium_serve_factory(f"--model-repository={example_repository}", "--metrics-interval-ms=200")


def scrape(server: Any) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sample_name = family.name if sample.name == f"{family.name}_total" else sample.name
            if sample_name == name and sample.labels == labels:
                return float(sample.value)
    raise KeyError(f"{name}{labels} not in /metrics")


def infer_simple(client: httpclient.InferenceServerClient, batch: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, size=(batch, 16), dtype=np.int32)
    b = rng.integers(0, 100, size=(batch, 16), dtype=np.int32)
    inputs = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        tensor = httpclient.InferInput(name, list(value.shape), "INT32")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def test_loaded_models_export_zero_valued_series_at_once(server: Any) -> None:
    text = scrape(server)
    labels = {"model": "simple_string", "version": "1"}  # no test sends it requests
    assert metric(text, "nv_inference_request_success", **labels) == 0
    for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
        assert metric(text, "nv_inference_request_failure", reason=reason, **labels) == 0
    assert metric(text, "nv_inference_pending_request_count", **labels) == 0
    assert metric(text, "nv_model_load_duration_secs", **labels) > 0
    assert 0 <= metric(text, "nv_cpu_utilization") <= 1
    assert metric(text, "nv_cpu_memory_total_bytes") > 0
    assert "# HELP nv_inference_count Number of inferences performed (does not include cached requests)\n" in text


def test_statistics_and_metrics_agree_after_a_known_load(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    batches = [1, 2, 3, 8, 1, 4, 5, 1]
    for seed, batch in enumerate(batches):
        infer_simple(client, batch, seed)
    stats = client.get_inference_statistics("simple")["model_stats"][0]
    text = scrape(server)
    labels = {"model": "simple", "version": "1"}
    success = int(stats["inference_stats"]["success"]["count"])
    assert success >= len(batches)
    assert metric(text, "nv_inference_request_success", **labels) == success
    assert metric(text, "nv_inference_count", **labels) == int(stats["inference_count"])
    assert metric(text, "nv_inference_exec_count", **labels) == int(stats["execution_count"])
    assert metric(text, "nv_inference_request_failure", reason="BACKEND", **labels) == int(
        stats["inference_stats"]["fail"]["count"]
    )
    for key, name in (
        ("success", "nv_inference_request_duration_us"),
        ("queue", "nv_inference_queue_duration_us"),
        ("compute_input", "nv_inference_compute_input_duration_us"),
        ("compute_infer", "nv_inference_compute_infer_duration_us"),
        ("compute_output", "nv_inference_compute_output_duration_us"),
    ):
        total_us = int(stats["inference_stats"][key]["ns"]) / 1000
        # the metric adds each request's duration in whole microseconds: at most 1 us lost per request
        assert total_us - success <= metric(text, name, **labels) <= total_us, name
    client.close()


# ------------------------------------------------------------------------------------ Prometheus
@pytest.fixture(scope="module")
def prometheus(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus server scraping the Tritium metrics port every 250 ms; yields its base URL."""
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is not installed (`make prometheus` or apt-get install prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 250ms\n  evaluation_interval: 250ms\n"
        "scrape_configs:\n"
        "  - job_name: tritium\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.metrics_port}']\n"
    )
    port = _free_port()
    log = open(work / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(work / 'prometheus.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_inference_count(server: Any, prometheus: str) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    before = int(client.get_inference_statistics("identity_fp32")["model_stats"][0]["inference_count"])
    sent = 0
    for batch in (3, 4, 6):
        data = np.ones((batch, 5), dtype=np.float32)
        tensor = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        client.infer("identity_fp32", [tensor])
        sent += batch
    client.close()
    expected = before + sent
    promql = 'nv_inference_count{job="tritium",model="identity_fp32",version="1"}'
    deadline = time.monotonic() + 60
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = query(prometheus, promql)
        if seen and float(seen[0]["value"][1]) == expected:
            break
        time.sleep(0.25)
    assert seen and float(seen[0]["value"][1]) == expected, seen
    # the scrape itself is healthy and every family parsed (a failed parse marks the target down)
    (up,) = query(prometheus, 'up{job="tritium"}')
    assert up["value"][1] == "1"
    failures = query(prometheus, 'nv_inference_request_failure{model="identity_fp32"}')
    assert sorted(r["metric"]["reason"] for r in failures) == ["BACKEND", "CANCELED", "OTHER", "REJECTED"]


def test_every_dashboard_query_runs_on_real_data(server: Any, prometheus: str) -> None:
    dashboard = json.loads((Path(__file__).resolve().parents[1] / "deploy/grafana/tritium-dashboard.json").read_text())
    client = httpclient.InferenceServerClient(server.http_url)
    for _ in range(3):
        infer_simple(client, 2, 0)
    client.close()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = (
                target["expr"]
                .replace("$__rate_interval", "30s")
                .replace("$model", "simple")
                .replace("$version", ".*")
            )
            deadline = time.monotonic() + 30
            result = query(prometheus, expr)
            while not result and "gpu" not in expr and time.monotonic() < deadline:
                time.sleep(0.5)
                result = query(prometheus, expr)
            if "gpu" not in expr:  # no GPU here: that series is legitimately absent
                assert result, f"panel {panel['title']!r}: no data for {expr}"
