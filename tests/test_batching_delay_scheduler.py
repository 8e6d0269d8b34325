"""Dynamic batching observed as Triton's QA observes it: TRITONSERVER_DELAY_SCHEDULER holds each batcher
until N requests are queued, then tritonclient's ``get_inference_statistics`` (execution_count,
batch_stats) and the Prometheus metrics show exactly which batches ran.

The repository holds copies of the example ``simple`` model (INT32 [16] x2, max_batch_size 8) with
different ``dynamic_batching`` sections.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

pytestmark = pytest.mark.timeout(240)

HOLD = 6
MODELS = {
    "batch_all": "dynamic_batching { }",
    "batch_preferred": "dynamic_batching { preferred_batch_size: [ 2, 4 ] }",
    "batch_two_instances": "dynamic_batching { }",
}
CONFIG = """\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }},
         {{ name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }},
         {{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {count} }} ]
{batching}
"""


@pytest.fixture(scope="module")
def server(tritium_serve_factory: Any, example_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = tmp_path_factory.mktemp("batching-repo")
    for name, batching in MODELS.items():
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(example_repository / "simple" / "1" / "model.onnx", repo / name / "1" / "model.onnx")
        two = name == "batch_two_instances"
        (repo / name / "config.pbtxt").write_text(
            CONFIG.format(name=name, max_batch=3 if two else 8, count=2 if two else 1, batching=batching)
        )
    return tritium_serve_factory(f"--model-repository={repo}", env={"TRITONSERVER_DELAY_SCHEDULER": str(HOLD)})


def send_concurrently(server: Any, model: str, batch_sizes: list[int]) -> None:
    """Send one request per batch size at once (tritonclient's async_infer) and check every answer."""
    client = httpclient.InferenceServerClient(server.http_url, concurrency=len(batch_sizes))
    pending = []
    for seed, batch in enumerate(batch_sizes):
        rng = np.random.default_rng(seed)
        a = rng.integers(-50, 50, size=(batch, 16), dtype=np.int32)
        b = rng.integers(-50, 50, size=(batch, 16), dtype=np.int32)
        inputs = []
        for name, value in (("INPUT0", a), ("INPUT1", b)):
            tensor = httpclient.InferInput(name, list(value.shape), "INT32")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        pending.append((client.async_infer(model, inputs), a, b))
    for request, a, b in pending:
        result = request.get_result(timeout=60)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    client.close()


def statistics(server: Any, model: str) -> dict[str, Any]:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        return dict(client.get_inference_statistics(model)["model_stats"][0])
    finally:
        client.close()


def batch_stats(stats: dict[str, Any]) -> dict[int, int]:
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def scrape_value(server: Any, line_prefix: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.split()[-1])
    raise KeyError(line_prefix)


@pytest.mark.parametrize(
    ("model", "sizes", "expected"),
    [
        ("batch_all", [1] * HOLD, {6: 1}),
        ("batch_preferred", [1] * HOLD, {4: 1, 2: 1}),
        ("batch_two_instances", [1] * HOLD, {3: 2}),
    ],
)
def test_batches_formed_once_the_hold_ends(server: Any, model: str, sizes: list[int], expected: dict[int, int]) -> None:
    send_concurrently(server, model, sizes)
    stats = statistics(server, model)
    assert batch_stats(stats) == expected
    assert int(stats["execution_count"]) == sum(expected.values())
    assert int(stats["inference_count"]) == sum(sizes)
    labels = f'{{model="{model}",version="1"}}'
    assert scrape_value(server, f"nv_inference_exec_count{labels}") == sum(expected.values())
    assert scrape_value(server, f"nv_inference_count{labels}") == sum(sizes)
    assert scrape_value(server, f"nv_inference_pending_request_count{labels}") == 0
