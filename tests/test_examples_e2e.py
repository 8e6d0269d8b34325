"""End to end over the example model repository (examples/build_repository.py): every example model through
the in-process API, and through HTTP and gRPC with NVIDIA's unmodified ``tritonclient``, each result checked
against the framework (ONNX Runtime, TensorFlow, PyTorch) run directly on the same model file and inputs."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritium import DataType, InferenceRequest, RequestedOutput, Server, StatusCode, Tensor, TritiumError

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)

SIMPLE_A = np.arange(32, dtype=np.int32).reshape(2, 16)
SIMPLE_B = np.full((2, 16), 5, dtype=np.int32)
STRING_A = np.array([[str(i).encode() for i in range(16)]], dtype=object)
STRING_B = np.array([[str(-2 * i).encode() for i in range(16)]], dtype=object)
IDENTITY = RNG.standard_normal((3, 7)).astype(np.float32)
IMAGES = RNG.standard_normal((2, 3, 224, 224)).astype(np.float32)
AUTO_A = RNG.standard_normal((2, 4)).astype(np.float32)
AUTO_B = RNG.standard_normal((2, 4)).astype(np.float32)
VERSION_X = np.array([[1, 2, 3, 4]], dtype=np.int32)

CASES: dict[str, dict[str, np.ndarray]] = {
    "simple": {"INPUT0": SIMPLE_A, "INPUT1": SIMPLE_B},
    "simple_string": {"INPUT0": STRING_A, "INPUT1": STRING_B},
    "identity_fp32": {"INPUT0": IDENTITY},
    "image_classification_model": {"INPUT0": IMAGES},
    "simple_autocomplete": {"INPUT0": AUTO_A, "INPUT1": AUTO_B},
    "simple_versions": {"INPUT0": VERSION_X},
}
"""Inputs for each served example model (every one of them is listed here)."""
if importlib.util.find_spec("tensorflow") is not None:  # the TensorFlow example is built only with TensorFlow
    CASES["simple_savedmodel"] = {"INPUT0": SIMPLE_A, "INPUT1": SIMPLE_B}
if importlib.util.find_spec("torch") is not None:  # the PyTorch examples are built only with torch
    CASES["simple_torchscript"] = {"INPUT__0": SIMPLE_A, "INPUT__1": SIMPLE_B}
    if any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):  # AOTInductor compiles C++
        CASES["simple_aoti"] = {"ARGS[0]": SIMPLE_A.astype(np.float32), "ARGS[1]": SIMPLE_B.astype(np.float32)}


def _wire(array: np.ndarray) -> str:
    return "BYTES" if array.dtype == object else DataType.from_numpy(array.dtype).value


def tf_reference(savedmodel: Path, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """TensorFlow's own answer: the SavedModel's ``serving_default`` signature called directly."""
    import tensorflow as tf

    outputs = tf.saved_model.load(str(savedmodel)).signatures["serving_default"](
        **{name: tf.constant(array) for name, array in inputs.items()}
    )
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def torch_reference(version_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """PyTorch's own answer: the TorchScript module (outputs ``OUTPUT__<i>``) or the AOTInductor package
    (outputs ``RESULT[<i>]``) called directly, inputs in their ordinal order."""
    import torch

    args = [torch.from_numpy(inputs[name]) for name in sorted(inputs)]
    if (version_dir / "model.pt").is_file():
        results = torch.jit.load(str(version_dir / "model.pt"))(*args)
        return {f"OUTPUT__{i}": r.numpy() for i, r in enumerate(results)}
    results = torch._inductor.aoti_load_package(str(version_dir / "model.pt2"))(*args)
    return {f"RESULT[{i}]": r.numpy() for i, r in enumerate(results)}


def reference(repo: Path, model: str, inputs: dict[str, np.ndarray], version: int = 1) -> dict[str, Any]:
    """ONNX Runtime's own answer for the model file, with strings decoded/encoded as the backend does
    (TensorFlow's for a SavedModel, PyTorch's for a model.pt or model.pt2)."""
    if (repo / model / str(version) / "model.savedmodel").is_dir():
        return tf_reference(repo / model / str(version) / "model.savedmodel", inputs)
    if any((repo / model / str(version) / name).is_file() for name in ("model.pt", "model.pt2")):
        return torch_reference(repo / model / str(version), inputs)
    session = ort.InferenceSession(str(repo / model / str(version) / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    feeds = {
        name: (np.vectorize(lambda b: b.decode(), otypes=[object])(a) if a.dtype == object else a)
        for name, a in inputs.items()
    }
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, feeds), strict=True))
    return {
        name: (np.vectorize(lambda s: s.encode(), otypes=[object])(v) if v.dtype == object else v)
        for name, v in outputs.items()
    }


def _as_bytes(item: Any) -> bytes:
    """BYTES elements as bytes (tritonclient's HTTP client returns JSON strings as ``str``)."""
    return item.encode() if isinstance(item, str) else bytes(item)


def assert_same(actual: np.ndarray, expected: np.ndarray, *, close: bool = False) -> None:
    assert actual.shape == expected.shape
    if expected.dtype == object:
        assert [_as_bytes(x) for x in actual.ravel()] == [_as_bytes(x) for x in expected.ravel()]
    elif close:
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples") / "models"
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(out)], check=True,
                   capture_output=True)
    return out


# ------------------------------------------------------------------------------------------ the builder
def test_builder_is_idempotent_and_deterministic(repo: Path, tmp_path: Path) -> None:
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in repo.rglob("*") if p.is_file()}
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo)], check=True,
                   capture_output=True)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in repo.rglob("*") if p.is_file()}
    assert after == before, "a second build rewrote files"
    other = tmp_path / "again"
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(other)], check=True,
                   capture_output=True)
    assert {p.relative_to(other): p.read_bytes() for p in other.rglob("*") if p.is_file()} == {
        p.relative_to(repo): data for p, (_, data) in before.items()
    }, "two builds differ"


# Python-backend examples (examples/python_models.py) are checked in tests/test_python_backend_e2e.py.
PYTHON_EXAMPLES = ("image_preprocess", "token_stream", "classify_pipeline")


def test_every_example_model_has_a_case(repo: Path) -> None:
    models = sorted(p.name for p in repo.iterdir() if p.is_dir() and p.name not in PYTHON_EXAMPLES)
    assert models == sorted(CASES)
    assert not (repo / "simple_autocomplete" / "config.pbtxt").exists()
    assert sorted(p.name for p in (repo / "simple_versions").iterdir() if p.is_dir()) == ["1", "2", "3"]


# ----------------------------------------------------------------------------------------- in-process
def _infer(inprocess: tuple[Server, Any], model: str, inputs: dict[str, np.ndarray], version: int = -1,
           outputs: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    server, loop = inprocess
    request = InferenceRequest(
        model_name=model,
        model_version=version,
        inputs={n: Tensor(n, DataType.BYTES if a.dtype == object else DataType.from_numpy(a.dtype), a)
                for n, a in inputs.items()},
        requested_outputs=[RequestedOutput(o) for o in outputs],
    )
    response = loop.run_until_complete(server.service.infer(request))
    return {t.name: t.data for t in response.outputs}


@pytest.mark.parametrize("model", sorted(CASES))
def test_in_process(inprocess: Any, repo: Path, model: str) -> None:
    version = 3 if model == "simple_versions" else 1
    expected = reference(repo, model, CASES[model], version)
    actual = _infer(inprocess, model, CASES[model])
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert_same(actual[name], expected[name], close=model == "image_classification_model")


def test_in_process_versions(inprocess: Any, repo: Path) -> None:
    assert_same(_infer(inprocess, "simple_versions", CASES["simple_versions"], 1)["OUTPUT0"], VERSION_X + 1)
    assert_same(_infer(inprocess, "simple_versions", CASES["simple_versions"], 3)["OUTPUT0"], VERSION_X + 3)
    assert_same(_infer(inprocess, "simple_versions", CASES["simple_versions"])["OUTPUT0"], VERSION_X + 3)
    with pytest.raises(TritiumError):
        _infer(inprocess, "simple_versions", CASES["simple_versions"], 2)


def test_in_process_requested_output(inprocess: Any) -> None:
    out = _infer(inprocess, "simple", CASES["simple"], outputs=("OUTPUT1",))
    assert sorted(out) == ["OUTPUT1"]
    assert_same(out["OUTPUT1"], SIMPLE_A - SIMPLE_B)


def test_in_process_string_that_is_not_a_number(inprocess: Any) -> None:
    bad = np.array([[b"x"] * 16], dtype=object)
    with pytest.raises(TritiumError) as info:
        _infer(inprocess, "simple_string", {"INPUT0": bad, "INPUT1": bad})
    assert info.value.code is StatusCode.INTERNAL
    assert "onnx runtime error" in info.value.message


# ------------------------------------------------------------------------------------- over the network
@pytest.fixture(scope="module")
def served(tritium_serve_factory: Any, repo: Path) -> Any:
    return tritium_serve_factory(f"--model-repository={repo}")


def _http_inputs(http: Any, inputs: dict[str, np.ndarray], binary: bool) -> list[Any]:
    result = []
    for name, array in inputs.items():
        tensor = http.InferInput(name, list(array.shape), _wire(array))
        tensor.set_data_from_numpy(array, binary_data=binary)
        result.append(tensor)
    return result


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("model", sorted(CASES))
def test_http(served: Any, repo: Path, model: str, binary: bool) -> None:
    import tritonclient.http as http

    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    version = 3 if model == "simple_versions" else 1
    expected = reference(repo, model, CASES[model], version)
    with http.InferenceServerClient(served.http_url) as client:
        assert client.is_model_ready(model)
        outputs = [http.InferRequestedOutput(n, binary_data=binary) for n in sorted(expected)]
        result = client.infer(model, _http_inputs(http, CASES[model], binary), outputs=outputs)
    for name in expected:
        assert_same(result.as_numpy(name), expected[name], close=model == "image_classification_model")


@pytest.mark.parametrize("model", sorted(CASES))
def test_grpc(served: Any, repo: Path, model: str) -> None:
    import tritonclient.grpc as grpc

    if served.grpc_port is None:
        pytest.skip("frontend_grpc is not installed")
    version = 3 if model == "simple_versions" else 1
    expected = reference(repo, model, CASES[model], version)
    with grpc.InferenceServerClient(served.grpc_address) as client:
        assert client.is_model_ready(model)
        inputs = []
        for name, array in CASES[model].items():
            tensor = grpc.InferInput(name, list(array.shape), _wire(array))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = client.infer(model, inputs)
    for name in expected:
        assert_same(result.as_numpy(name), expected[name], close=model == "image_classification_model")


def test_versions_over_http(served: Any) -> None:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    with http.InferenceServerClient(served.http_url) as client:
        assert client.get_model_metadata("simple_versions")["versions"] == ["1", "3"]
        assert client.is_model_ready("simple_versions", "1")
        assert not client.is_model_ready("simple_versions", "2")
        assert client.is_model_ready("simple_versions", "3")
        inputs = _http_inputs(http, CASES["simple_versions"], True)
        for version, added in (("1", 1), ("3", 3), ("", 3)):
            result = client.infer("simple_versions", inputs, model_version=version)
            assert_same(result.as_numpy("OUTPUT0"), VERSION_X + added)
        with pytest.raises(InferenceServerException):
            client.infer("simple_versions", inputs, model_version="2")


def test_image_classification_config_and_labels(served: Any) -> None:
    import tritonclient.http as http

    if served.http_port is None:
        pytest.skip("frontend_http is not installed")
    with http.InferenceServerClient(served.http_url) as client:
        config = client.get_model_config("image_classification_model")
        assert config["max_batch_size"] == 64
        assert config["dynamic_batching"]["preferred_batch_size"] == [16, 32]
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 10000
        assert config["input"][0]["dims"] == [3, 224, 224]
        assert config["output"][0]["dims"] == [1000]
        inputs = _http_inputs(http, {"INPUT0": IMAGES[:1]}, True)
        result = client.infer("image_classification_model", inputs,
                              outputs=[http.InferRequestedOutput("OUTPUT0", class_count=3)])
        top = [item.decode().split(":") for item in result.as_numpy("OUTPUT0").ravel()]
        assert len(top) == 3
        assert all(label == f"class_{index}" for _, index, label in top)


def test_simple_autocomplete_config(served: Any) -> None:
    import tritonclient.grpc as grpc

    if served.grpc_port is None:
        pytest.skip("frontend_grpc is not installed")
    with grpc.InferenceServerClient(served.grpc_address) as client:
        config = client.get_model_config("simple_autocomplete", as_json=True)["config"]
    assert config["backend"] == "onnxruntime" and config["platform"] == "onnxruntime_onnx"
    assert int(config["max_batch_size"]) == 4
    assert "dynamic_batching" in config
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["input"]] == [
        ("INPUT0", "TYPE_FP32", [4]), ("INPUT1", "TYPE_FP32", [4])
    ]
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["output"]] == [
        ("OUTPUT0", "TYPE_FP32", [4]), ("OUTPUT1", "TYPE_FP32", [4])
    ]
