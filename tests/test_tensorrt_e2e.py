"""End to end: a repository holding TensorRT models beside ONNX models, served by ``tritium serve`` on a
machine where TensorRT cannot run (no ``tensorrt`` package or no GPU).

The ONNX models serve; the ``tensorrt_plan`` models (one with a config, one config-less ``model.plan``) are
UNAVAILABLE, and the repository index gives the reason the backend's availability states. ``tritium plugins``
lists the backend as unavailable with the same reason. Also here: an ONNX model asking for an execution
accelerator this onnxruntime lacks fails to load with Triton's message, the other models unaffected.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tritium_backend_tensorrt")

from tritium_backend_tensorrt._availability import availability

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
REASON = availability()

if REASON is None:
    pytest.skip("TensorRT can run here: this module covers machines where it cannot", allow_module_level=True)


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_repository", ROOT / "examples" / "build_repository.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRT_CONFIG = """
platform: "tensorrt_plan"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
"""

OPENVINO_CONFIG = """
optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builder = _load_builder()
    root = tmp_path_factory.mktemp("trt-repo") / "models"
    builder._write_model(root, "onnx_add_mul", builder.add_mul_model(), None)
    builder._write_model(root, "onnx_openvino", builder.add_mul_model(), OPENVINO_CONFIG)
    (root / "trt_simple" / "1").mkdir(parents=True)
    (root / "trt_simple" / "config.pbtxt").write_text(TRT_CONFIG)
    (root / "trt_simple" / "1" / "model.plan").write_bytes(b"a serialized TensorRT engine would be here")
    (root / "trt_configless" / "1").mkdir(parents=True)
    (root / "trt_configless" / "1" / "model.plan").write_bytes(b"another engine")
    return root


@pytest.fixture(scope="module")
def served(tritium_serve_factory: Any, repo: Path) -> Any:
    return tritium_serve_factory(f"--model-repository={repo}", "--exit-on-error=false")


def _index(served: Any) -> dict[str, dict[str, Any]]:
    import tritonclient.http as http

    with http.InferenceServerClient(served.http_url) as client:
        return {entry["name"]: entry for entry in client.get_model_repository_index()}


def test_onnx_model_serves_beside_the_tensorrt_models(served: Any) -> None:
    import tritonclient.http as http

    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    inputs = [http.InferInput("INPUT0", [2, 4], "FP32"), http.InferInput("INPUT1", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    with http.InferenceServerClient(served.http_url) as client:
        result = client.infer("onnx_add_mul", inputs)
        assert client.is_model_ready("onnx_add_mul")
        assert not client.is_model_ready("trt_simple")
        assert not client.is_model_ready("trt_configless")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a * b)


@pytest.mark.parametrize("model", ["trt_simple", "trt_configless"])
def test_tensorrt_models_are_unavailable_with_the_reason(served: Any, model: str) -> None:
    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    entry = _index(served)[model]
    assert entry["state"] == "UNAVAILABLE"
    assert "tensorrt" in entry["reason"]
    assert REASON in entry["reason"], entry["reason"]


def test_grpc_index_gives_the_same_reason(served: Any) -> None:
    import tritonclient.grpc as grpc

    if served.grpc_port is None:
        pytest.skip("frontend_grpc is not installed")
    with grpc.InferenceServerClient(served.grpc_address) as client:
        index = {m.name: m for m in client.get_model_repository_index().models}
    assert index["trt_simple"].state == "UNAVAILABLE"
    assert REASON in index["trt_simple"].reason
    assert index["onnx_add_mul"].state == "READY"


def test_onnx_accelerator_missing_from_onnxruntime_fails_that_model_only(served: Any) -> None:
    import onnxruntime

    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO execution provider")
    entry = _index(served)["onnx_openvino"]
    assert entry["state"] == "UNAVAILABLE"
    assert "unknown Execution Accelerator 'openvino' is requested" in entry["reason"]
    assert "OpenVINOExecutionProvider" in entry["reason"]


def test_tritium_plugins_lists_the_backend_as_unavailable() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "tritium"), "plugins"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"tensorrt: {REASON}" in result.stdout
