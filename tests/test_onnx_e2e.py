"""End to end for the onnxruntime backend: a repository with an identity model per datatype (configs
auto-completed), a non-batching model and an external-weights model, served in-process and by
``tritium serve`` to NVIDIA's ``tritonclient`` over HTTP and gRPC. Results are compared with ONNX Runtime run
directly on the same model file; auto-complete outcomes are read back through the config endpoint."""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tritium import DataType, InferenceRequest, Server, ServerOptions, StatusCode, Tensor, TritiumError
from tritium.testing.builders import assert_same_array as assert_same
from tritium.testing.builders import wire_sample as sample

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
WIRE_TYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
              "FP32", "FP64", "BYTES", "BF16"]


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_repository", ROOT / "examples" / "build_repository.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _load_builder()


def ort_reference(model_file: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime's own outputs (strings and bfloat16 converted the way the backend converts them)."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds: dict[str, Any] = {}
    for name, array in inputs.items():
        if array.dtype == object:
            feeds[name] = np.vectorize(lambda b: b.decode(), otypes=[object])(array)
        elif array.dtype == ml_dtypes.bfloat16:
            feeds[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), 16)
        else:
            feeds[name] = array
    names = [o.name for o in session.get_outputs()]
    if any(isinstance(v, ort.OrtValue) for v in feeds.values()):
        values = session.run_with_ort_values(names, feeds)
        raw = [
            np.frombuffer(
                bytes((ctypes.c_char * v.tensor_size_in_bytes()).from_address(v.data_ptr())),
                dtype=ml_dtypes.bfloat16,
            ).reshape(v.shape())
            for v in values
        ]
        return dict(zip(names, raw, strict=True))
    outputs = session.run(names, feeds)
    return {
        n: (np.vectorize(lambda s: s.encode(), otypes=[object])(v) if v.dtype == object else v)
        for n, v in zip(names, outputs, strict=True)
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx-e2e") / "models"
    BUILDER.build_test_repository(out)
    BUILDER.build_repository(out)
    # A model that only auto-complete can describe, with warmup on every kind of data.
    warm = out / "warmed_simple"
    (warm / "1").mkdir(parents=True)
    (warm / "1" / "model.onnx").write_bytes((out / "simple" / "1" / "model.onnx").read_bytes())
    (warm / "warmup").mkdir()
    (warm / "warmup" / "ones").write_bytes(np.ones(16, np.int32).tobytes())
    (warm / "config.pbtxt").write_text(
        """
        max_batch_size: 8
        model_warmup [
          { name: "zeros" batch_size: 2
            inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } }
            inputs { key: "INPUT1" value { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } } },
          { name: "random" batch_size: 1 count: 3
            inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [ 16 ] random_data: true } }
            inputs { key: "INPUT1" value { data_type: TYPE_INT32 dims: [ 16 ] input_data_file: "ones" } } }
        ]
        """
    )
    # A GPU instance group on a machine without GPU: soft placement puts it on the CPU.
    gpu = out / "gpu_group"
    (gpu / "1").mkdir(parents=True)
    (gpu / "1" / "model.onnx").write_bytes((out / "simple" / "1" / "model.onnx").read_bytes())
    (gpu / "config.pbtxt").write_text('max_batch_size: 8 instance_group [ { kind: KIND_GPU count: 1 } ]')
    return out


# ------------------------------------------------------------------------------------------- in-process
def _infer(inprocess: Any, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    server, loop = inprocess
    tensors = {}
    for name, array in inputs.items():
        datatype = DataType.BYTES if array.dtype == object else DataType.from_numpy(array.dtype)
        tensors[name] = Tensor(name, datatype, array)
    response = loop.run_until_complete(server.service.infer(InferenceRequest(model_name=model, inputs=tensors)))
    return {t.name: t.data for t in response.outputs}


@pytest.mark.parametrize("wire", WIRE_TYPES)
def test_in_process_identity_per_datatype(inprocess: Any, repo: Path, wire: str) -> None:
    model = f"auto_identity_{wire.lower()}"
    inputs = {"INPUT0": sample(wire, (3, 5))}
    out = _infer(inprocess, model, inputs)
    expected = ort_reference(repo / model / "1" / "model.onnx", inputs)
    assert_same(out["OUTPUT0"], expected["OUTPUT0"])
    assert_same(out["OUTPUT0"], inputs["INPUT0"])


def test_in_process_non_batching_and_external_weights(inprocess: Any, repo: Path) -> None:
    x = sample("FP32", (2, 3))
    assert_same(_infer(inprocess, "identity_nobatch_fp32", {"INPUT0": x})["OUTPUT0"], x)
    y = sample("FP32", (4, 256), seed=3)
    expected = ort_reference(repo / "external_weights" / "1" / "model.onnx" / "model.onnx", {"INPUT0": y})
    out = _infer(inprocess, "external_weights", {"INPUT0": y})["OUTPUT0"]
    assert_same(out, expected["OUTPUT0"])
    np.testing.assert_array_equal(out, y + BUILDER.external_weights_values())


def test_in_process_non_utf8_bytes_are_invalid_arg(inprocess: Any) -> None:
    bad = np.array([[b"ok", b"\xc3\x28"]], dtype=object)
    with pytest.raises(TritiumError) as info:
        _infer(inprocess, "auto_identity_bytes", {"INPUT0": bad})
    assert info.value.code is StatusCode.INVALID_ARG
    assert "not valid UTF-8" in info.value.message


def test_warmup_ran_and_the_model_is_ready(inprocess: Any) -> None:
    server, _ = inprocess
    assert server.service.model_ready("warmed_simple")
    # Triton counts warmup executions in the statistics (and metrics) like any other: per instance, one
    # execution of 2 inferences ("zeros") and three of 1 ("random"), each a successful request.
    instances = sum(g.count for g in server.service.model_config("warmed_simple").instance_group)
    (stats,) = server.service.statistics("warmed_simple")["model_stats"]
    assert (stats["inference_count"], stats["execution_count"]) == (5 * instances, 4 * instances)
    assert stats["inference_stats"]["success"]["count"] == 4 * instances
    assert {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]} == {
        1: 3 * instances, 2: instances
    }
    a = sample("INT32", (1, 16))
    out = _infer(inprocess, "warmed_simple", {"INPUT0": a, "INPUT1": a})
    np.testing.assert_array_equal(out["OUTPUT0"], a + a)


def test_gpu_group_is_soft_placed_on_the_cpu(inprocess: Any) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine may have a GPU")
    server, _ = inprocess
    assert server.service.model_ready("gpu_group")
    a = sample("INT32", (2, 16))
    np.testing.assert_array_equal(_infer(inprocess, "gpu_group", {"INPUT0": a, "INPUT1": a})["OUTPUT1"], a - a)


def test_broken_warmup_keeps_the_model_unavailable(tmp_path: Path, repo: Path) -> None:
    model = tmp_path / "models" / "bad_warmup"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes((repo / "simple_string" / "1" / "model.onnx").read_bytes())
    (model / "config.pbtxt").write_text(
        """
        max_batch_size: 8
        model_warmup [ { name: "text" batch_size: 1
          inputs { key: "INPUT0" value { data_type: TYPE_STRING dims: [ 16 ] zero_data: true } }
          inputs { key: "INPUT1" value { data_type: TYPE_STRING dims: [ 16 ] zero_data: true } } } ]
        """
    )

    async def start() -> bool:
        server = Server(ServerOptions(model_repositories=(str(tmp_path / "models"),), exit_on_error=False))
        await server.start()
        try:
            return server.service.model_ready("bad_warmup")
        finally:
            await server.stop()

    # zero BYTES data is the empty string, which the model's Cast to int32 cannot parse
    assert asyncio.run(start()) is False


# ---------------------------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def served(tritium_serve_factory: Any, repo: Path) -> Any:
    return tritium_serve_factory(f"--model-repository={repo}")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("wire", WIRE_TYPES)
def test_identity_per_datatype_over_the_network(
    served: Any, identity_round_trip: Any, protocol: str, wire: str
) -> None:
    identity_round_trip(served, protocol, f"auto_identity_{wire.lower()}", wire)


@pytest.mark.parametrize("wire", WIRE_TYPES)
def test_auto_completed_config_over_http(served: Any, wire: str) -> None:
    import tritonclient.http as http

    served.require("http")
    with http.InferenceServerClient(served.http_url) as client:
        config = client.get_model_config(f"auto_identity_{wire.lower()}")
        metadata = client.get_model_metadata(f"auto_identity_{wire.lower()}")
    config_type = "TYPE_STRING" if wire == "BYTES" else f"TYPE_{wire}"
    assert config["name"] == f"auto_identity_{wire.lower()}"
    assert config["backend"] == "onnxruntime"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 4
    assert config["dynamic_batching"]["preferred_batch_size"] == [4]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [("INPUT0", config_type, [-1])]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [("OUTPUT0", config_type, [-1])]
    assert "reshape" not in config["input"][0]
    assert config["default_model_filename"] == "model.onnx"
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "INPUT0", "datatype": wire, "shape": [-1, -1]}]


def test_external_weights_config_over_grpc(served: Any) -> None:
    import tritonclient.grpc as grpc

    served.require("grpc")
    with grpc.InferenceServerClient(served.grpc_address) as client:
        config = client.get_model_config("external_weights").config
    assert config.max_batch_size == 8  # kept from config.pbtxt
    assert config.HasField("dynamic_batching")  # switched on by auto-complete
    assert [(t.name, list(t.dims)) for t in config.input] == [("INPUT0", [256])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("OUTPUT0", [256])]


def test_non_utf8_bytes_over_http_and_grpc(served: Any) -> None:
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    served.require("http")
    served.require("grpc")
    bad = np.array([[b"\xff\xfe"]], dtype=object)
    tensor = http.InferInput("INPUT0", [1, 1], "BYTES")
    tensor.set_data_from_numpy(bad, binary_data=True)
    with http.InferenceServerClient(served.http_url) as client, pytest.raises(InferenceServerException) as info:
        client.infer("auto_identity_bytes", [tensor])
    assert "not valid UTF-8" in str(info.value)
    assert info.value.status() == "400"
    gtensor = grpc.InferInput("INPUT0", [1, 1], "BYTES")
    gtensor.set_data_from_numpy(bad)
    with grpc.InferenceServerClient(served.grpc_address) as client, pytest.raises(InferenceServerException) as info:
        client.infer("auto_identity_bytes", [gtensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "not valid UTF-8" in str(info.value)


def test_backend_config_sets_the_default_max_batch_size(tritium_serve_factory: Any, tmp_path: Path) -> None:
    import tritonclient.http as http

    repo = tmp_path / "models"
    BUILDER._write_model(repo, "auto", BUILDER.add_mul_model(), None)
    served = tritium_serve_factory(
        f"--model-repository={repo}", "--backend-config=onnxruntime,default-max-batch-size=16"
    )
    try:
        served.require("http")
        with http.InferenceServerClient(served.http_url) as client:
            config = client.get_model_config("auto")
        assert config["max_batch_size"] == 16
        assert config["dynamic_batching"]["preferred_batch_size"] == [16]
    finally:
        served.stop()


def test_builder_cli_adds_test_models(tmp_path: Path) -> None:
    out = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(out), "--test-models"],
        check=True, capture_output=True, text=True,
    )
    assert "auto_identity_bf16" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert set(BUILDER.EXAMPLE_MODELS) <= names and set(BUILDER.TEST_MODELS) <= names
