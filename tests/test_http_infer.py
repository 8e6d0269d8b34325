"""End to end over HTTP: a real ``tritium serve`` (ONNX example models, the kit's identity backend for
decoupled models), NVIDIA's unmodified ``tritonclient.http`` (sync and aio), and raw HTTP for what the
client cannot send. Status codes and error strings are Triton's (reference/triton-facts.md §1, §12)."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tritium import DataType
from tritium.testing.fakes import IDENTITY_MODEL_FILE, identity_config, write_model

ROOT = Path(__file__).resolve().parents[1]
A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.full((1, 16), 3, dtype=np.int32)


@pytest.fixture(scope="module")
def server(tritium_serve_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = tmp_path_factory.mktemp("http_repo") / "models"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo), "--test-models"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    files = {IDENTITY_MODEL_FILE: b""}
    write_model(repo, identity_config("bytes_one", DataType.BYTES, (1,), 8), files=files)
    write_model(
        repo, identity_config("repeat3", DataType.BYTES, (-1,), 0, decoupled=True, decoupled_repeat=3), files=files
    )
    shutil.rmtree(repo / "external_weights", ignore_errors=True)
    return tritium_serve_factory(
        f"--model-repository={repo}", "--allow-client-shm=true", extra_plugins=["tritium.testing.fakes"]
    )


@pytest.fixture
def client(server: Any) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.http_url)


def _inputs(binary: bool = True) -> list[httpclient.InferInput]:
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(A, binary_data=binary)
    inputs[1].set_data_from_numpy(B, binary_data=binary)
    return inputs


def _base(server: Any) -> str:
    return f"http://{server.http_url}"


def _post(server: Any, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(_base(server) + path, timeout=30, **kwargs)


# ----------------------------------------------------------------------------------- health, metadata
def test_health_and_metadata(client: httpclient.InferenceServerClient, server: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple") and client.is_model_ready("simple_versions", "3")
    assert not client.is_model_ready("simple_versions", "2")
    r = requests.get(_base(server) + "/v2/models/simple_versions/versions/2/ready")
    assert (r.status_code, r.json()) == (400, {"error": "Model version not ready"})
    metadata = client.get_server_metadata()
    assert metadata["name"] == "triton"
    for extension in ("binary_tensor_data", "model_repository", "statistics", "system_shared_memory"):
        assert extension in metadata["extensions"]
    model = client.get_model_metadata("simple")
    assert model["inputs"] == [
        {"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
        {"name": "INPUT1", "datatype": "INT32", "shape": [-1, 16]},
    ]
    assert client.get_model_metadata("simple_versions", "3")["versions"] == ["1", "3"]
    config = client.get_model_config("simple")
    assert config["max_batch_size"] == 8 and config["input"][0]["data_type"] == "TYPE_INT32"
    r = requests.get(_base(server) + "/v2/models/nope")
    assert (r.status_code, r.json()) == (404, {"error": "Request for unknown model: 'nope' is not found"})


def test_unknown_paths_and_methods(server: Any) -> None:
    for path in ("/v2/nope", "/v2/models/simple/versions/one", "/v2/models/simple/versions/1/trace/setting"):
        r = requests.get(_base(server) + path)
        assert (r.status_code, r.json()) == (404, {"error": "Not Found"})
    r = requests.get(_base(server) + "/v2/models/simple/infer")
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})
    r = _post(server, "/v2/models/simple/config")
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})


# ------------------------------------------------------------------------------------------- inference
@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False, None])
def test_simple_infer(client: httpclient.InferenceServerClient, binary_in: bool, binary_out: bool | None) -> None:
    outputs = None
    if binary_out is not None:
        outputs = [httpclient.InferRequestedOutput(f"OUTPUT{i}", binary_data=binary_out) for i in range(2)]
    result = client.infer("simple", _inputs(binary_in), outputs=outputs, request_id="req-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_version"] == "1"


def test_versions_in_urls(client: httpclient.InferenceServerClient) -> None:
    data = np.arange(4, dtype=np.int32).reshape(1, 4)
    for version in ("1", "3", ""):
        x = httpclient.InferInput("INPUT0", [1, 4], "INT32")
        x.set_data_from_numpy(data)
        out = client.infer("simple_versions", [x], model_version=version).as_numpy("OUTPUT0")
        np.testing.assert_array_equal(out, data + int(version or 3))


def test_json_data_flat_and_nested(server: Any) -> None:
    for data0, data1 in ((A.reshape(-1).tolist(), B.tolist()), (A.tolist(), B.reshape(-1).tolist())):
        body = {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": data0},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": data1},
            ],
            "outputs": [{"name": "OUTPUT0"}],
        }
        r = _post(server, "/v2/models/simple/infer", data=json.dumps(body))
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert r.json()["outputs"] == [
            {"name": "OUTPUT0", "datatype": "INT32", "shape": [1, 16], "data": (A + B).reshape(-1).tolist()}
        ]


def test_mixed_binary_and_json_outputs(server: Any) -> None:
    header = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": B.reshape(-1).tolist()},
            ],
            "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1"}],
        }
    ).encode()
    r = _post(
        server,
        "/v2/models/simple/infer",
        data=header + A.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    length = int(r.headers["Inference-Header-Content-Length"])
    doc = json.loads(r.content[:length])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 64}
    assert doc["outputs"][1]["data"] == (A - B).reshape(-1).tolist()
    np.testing.assert_array_equal(np.frombuffer(r.content[length:], np.int32), (A + B).reshape(-1))


def test_async_client(server: Any) -> None:
    async def run() -> None:
        client = aiohttpclient.InferenceServerClient(server.http_url)
        try:
            assert await client.is_server_ready()
            results = await asyncio.gather(*(client.infer("simple", _inputs()) for _ in range(8)))
            for result in results:
                np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
            stats = await client.get_inference_statistics("simple")
            assert stats["model_stats"][0]["inference_count"] >= 8
        finally:
            await client.close()

    asyncio.run(run())


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_tensors(client: httpclient.InferenceServerClient, binary: bool) -> None:
    a = np.array([str(i).encode() for i in range(16)], dtype=object).reshape(1, 16)
    b = np.array([b"1"] * 16, dtype=object).reshape(1, 16)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "BYTES"), httpclient.InferInput("INPUT1", [1, 16], "BYTES")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    result = client.infer("simple_string", inputs, outputs=outputs)
    assert [int(x) for x in result.as_numpy("OUTPUT0").reshape(-1)] == [i + 1 for i in range(16)]


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_binary_only(client: httpclient.InferenceServerClient, server: Any, dtype: str) -> None:
    wire = dtype.upper()
    values = np.array([[0.5, -2.0, 3.25]], dtype=np.float16 if dtype == "fp16" else ml_dtypes.bfloat16)
    x = httpclient.InferInput("INPUT0", [1, 3], wire)
    x.set_data_from_numpy(values)
    result = client.infer(f"auto_identity_{dtype}", [x])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0").astype(np.float32), values.astype(np.float32))
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": wire, "data": [1.0]}]}
    r = _post(server, f"/v2/models/auto_identity_{dtype}/infer", json=body)
    assert (r.status_code, r.json()) == (
        400,
        {
            "error": f"receiving {wire} data via JSON is not supported. Please use the binary data format "
            "for input INPUT0"
        },
    )


@pytest.mark.parametrize("request_algorithm", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_algorithm", [None, "gzip", "deflate"])
def test_compression(
    client: httpclient.InferenceServerClient, request_algorithm: str | None, response_algorithm: str | None
) -> None:
    result = client.infer(
        "simple",
        _inputs(),
        request_compression_algorithm=request_algorithm,
        response_compression_algorithm=response_algorithm,
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)


def test_classification(client: httpclient.InferenceServerClient) -> None:
    image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    x = httpclient.InferInput("INPUT0", list(image.shape), "FP32")
    name = client.get_model_metadata("image_classification_model")["inputs"][0]["name"]
    x = httpclient.InferInput(name, list(image.shape), "FP32")
    x.set_data_from_numpy(image)
    output = client.get_model_metadata("image_classification_model")["outputs"][0]["name"]
    result = client.infer(
        "image_classification_model", [x], outputs=[httpclient.InferRequestedOutput(output, class_count=3)]
    )
    top = result.as_numpy(output)
    assert top.shape == (1, 3)
    value, index = top[0, 0].decode().split(":")[:2]
    assert float(value) >= float(top[0, 1].decode().split(":")[0]) and int(index) >= 0


def test_raw_binary_requests(server: Any) -> None:
    floats = np.arange(8, dtype=np.float32)
    r = _post(
        server,
        "/v2/models/identity_fp32/infer",
        data=floats.tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["Inference-Header-Content-Length"])
    assert r.content[length:] == floats.tobytes()
    r = _post(server, "/v2/models/bytes_one/infer", data=b"427", headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 200, r.text
    length = int(r.headers["Inference-Header-Content-Length"])
    assert r.content[length + 4 :] == b"427"
    r = _post(server, "/v2/models/simple/infer", data=b"")
    assert (r.status_code, r.json()) == (
        400,
        {
            "error": "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be deduced but got "
            "2 inputs in 'simple' model configuration"
        },
    )


def test_request_parameters(client: httpclient.InferenceServerClient, server: Any) -> None:
    result = client.infer("simple", _inputs(), priority=1, timeout=1_000_000, parameters={"k": "v", "n": 1})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    body = {
        "inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [0] * 16}],
        "parameters": {"triton_enable_empty_final_response": True},
    }
    r = _post(server, "/v2/models/simple/infer", json=body)
    assert (r.status_code, r.json()) == (
        400,
        {"error": "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified."},
    )


# ---------------------------------------------------------------------------------------------- errors
def _infer_json(server: Any, inputs: list[dict[str, Any]], model: str = "simple") -> requests.Response:
    return _post(server, f"/v2/models/{model}/infer", json={"inputs": inputs})


def test_triton_error_answers(server: Any) -> None:
    ok0 = {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
    ok1 = {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}
    r = _post(server, "/v2/models/simple/infer", data=b"{not json")
    assert (r.status_code, r.json()) == (
        400,  # Triton 2.51 answers 500; a request at fault is a 4xx here (docs/http.md)
        {"error": "failed to parse the request JSON buffer: Missing a name for object member. at 1"},
    )
    r = _infer_json(server, [ok0, {**ok1, "shape": [1, 15], "data": list(range(15))}])
    assert r.status_code == 400
    assert r.json()["error"] == (
        "[request id: <id_unknown>] unexpected shape for input 'INPUT1' for model 'simple'. Expected [-1,16], got "
        "[1,15]. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
        "prepended to each input shape. If you want to specify the full shape including the batch dim in your "
        "input dims config, try setting max_batch_size to zero. See the model configuration docs for more info "
        "on max_batch_size."
    )
    r = _infer_json(server, [ok0, {**ok1, "datatype": "FP32", "data": [0.5] * 16}])
    assert (r.status_code, r.json()) == (
        400,
        {
            "error": "[request id: <id_unknown>] inference input 'INPUT1' data-type is 'FP32', but model "
            "'simple' expects 'INT32'"
        },
    )
    r = _infer_json(server, [ok0])
    assert r.status_code == 400
    assert r.json()["error"] == (
        "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) "
        "['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s)."
    )
    r = _infer_json(server, [ok0, ok1], model="nope")
    assert (r.status_code, r.json()) == (404, {"error": "Request for unknown model: 'nope' is not found"})
    r = _infer_json(server, [ok0, {**ok1, "data": [1, 2]}])
    assert (r.status_code, r.json()) == (
        400,
        {"error": "Failed to parse 'data' field: shape does not match true shape"},
    )
    r = _infer_json(server, [ok0, {**ok1, "data": list(range(17))}])
    assert (r.status_code, r.json()) == (
        400,
        {"error": "Unable to parse 'data': Shape does not match true shape of 'data' field"},
    )
    r = _infer_json(server, [ok0, {**ok1, "shape": [2, -5]}])
    assert (r.status_code, r.json()) == (
        400,
        {"error": "Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer"},
    )
    r = _infer_json(server, [ok0, {**ok1, "shape": [2**4, 2**60 + 2], "data": [1]}])
    assert r.status_code == 400 and "causes total element count to exceed maximum size of" in r.json()["error"]
    r = _infer_json(server, [ok0, {**ok1, "shape": [2**2, 2**60 + 2], "data": [1]}])
    assert r.status_code == 400 and "byte size overflow for input" in r.json()["error"]
    r = _infer_json(server, [ok0, {**ok1, "shape": [1, 1 << 40], "parameters": {"binary_data_size": 4}, "data": None}])
    assert r.status_code == 400 and "Input must set only one of the following fields" in r.json()["error"]
    nested: Any = 1
    for _ in range(120):
        nested = [nested]
    r = _infer_json(server, [ok0, {**ok1, "shape": [1, 1], "data": nested}])
    assert r.status_code == 400 and "JSON nesting depth exceeds maximum allowed limit (100)" in r.json()["error"]
    r = _post(
        server,
        "/v2/models/simple/infer",
        json={"inputs": []},
        headers={"Inference-Header-Content-Length": "99999999999"},
    )
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
    r = _post(
        server, "/v2/models/simple/infer", data=b'{"inputs":[]}', headers={"Inference-Header-Content-Length": "20"}
    )
    assert (r.status_code, r.json()) == (400, {"error": "inference header size should be in range (0, 13), got: 20"})
    r = _post(server, "/v2/models/simple/infer", json={"inputs": [ok0, ok1], "outputs": [{"name": "OUTPUT0"}] * 2})
    assert r.status_code == 400 and "output 'OUTPUT0' already exists in request" in r.json()["error"]
    r = _post(server, "/v2/models/simple/infer", data=gzip.compress(b"x" * 100), headers={"Content-Encoding": "br"})
    assert (r.status_code, r.json()) == (501, {"error": "Unsupported compression type"})
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        httpclient.InferenceServerClient(server.http_url).infer(
            "simple", [_inputs()[0], httpclient.InferInput("INPUT1", [1, 15], "INT32").set_data_from_numpy(A[:, :15])]
        )
    assert requests.get(_base(server) + "/v2/health/live").status_code == 200


# ------------------------------------------------------------------------------ decoupled and generate
def test_decoupled_model_on_infer(server: Any) -> None:
    r = _infer_json(server, [{"name": "INPUT0", "shape": [1], "datatype": "BYTES", "data": ["a"]}], model="repeat3")
    assert (r.status_code, r.json()) == (
        501,
        {"error": "HTTP end point doesn't support models with decoupled transaction policy"},
    )


def test_generate_and_generate_stream(server: Any) -> None:
    r = _post(server, "/v2/models/repeat3/generate_stream", json={"INPUT0": "hello", "id": "g1"}, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = [json.loads(line[len(b"data: ") :]) for line in r.iter_lines() if line.startswith(b"data: ")]
    assert [e["OUTPUT0"] for e in events] == ["hello"] * 3
    assert all(e["id"] == "g1" and e["model_name"] == "repeat3" for e in events)
    r = _post(server, "/v2/models/repeat3/generate", json={"INPUT0": "hello"})
    assert r.status_code == 400 and "generate expects model to produce exactly 1 response" in r.json()["error"]
    r = _post(
        server, "/v2/models/simple/generate", json={"INPUT0": A.reshape(-1).tolist(), "INPUT1": B.reshape(-1).tolist()}
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["OUTPUT0"] == (A + B).reshape(-1).tolist() and doc["model_name"] == "simple"
    r = _post(server, "/v2/models/simple/generate", json={"INPUT0": ["x"] * 16, "INPUT1": [1] * 16})
    assert r.status_code == 400 and "attempt to access JSON non-signed-integer as signed-integer" in r.json()["error"]


# ------------------------------------------------------------------------------------ statistics & co
def test_statistics(client: httpclient.InferenceServerClient, server: Any) -> None:
    client.infer("simple", _inputs())
    every = client.get_inference_statistics()["model_stats"]
    assert {"simple", "identity_fp32"} <= {s["name"] for s in every}
    one = client.get_inference_statistics("simple")["model_stats"]
    assert [s["name"] for s in one] == ["simple"] and one[0]["inference_count"] >= 1
    versioned = client.get_inference_statistics("simple_versions", "3")["model_stats"]
    assert [(s["name"], s["version"]) for s in versioned] == [("simple_versions", "3")]
    # Triton's answers (observed with 2.51, same code in 2.73): INVALID_ARG, not NOT_FOUND
    r = requests.get(_base(server) + "/v2/models/nope/stats")
    assert (r.status_code, r.json()) == (400, {"error": "requested model 'nope' is not available"})
    r = requests.get(_base(server) + "/v2/models/simple/versions/7/stats")
    assert (r.status_code, r.json()) == (400, {"error": "requested model version is not available for model 'simple'"})


def test_logging_and_trace_settings(client: httpclient.InferenceServerClient, server: Any) -> None:
    settings = client.get_log_settings()
    assert set(settings) >= {"log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}
    updated = client.update_log_settings({"log_verbose_level": 1})
    assert updated["log_verbose_level"] == 1
    client.update_log_settings({"log_verbose_level": 0})
    r = _post(server, "/v2/logging", json={"log_file": "/tmp/elsewhere.log"})
    assert (r.status_code, r.json()) == (
        501,
        {"error": "log file location can not be updated through network protocol"},
    )
    trace = client.get_trace_settings()
    # Triton's order (observed with 2.51, same code in 2.73)
    assert list(trace) == ["trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file", "trace_mode"]
    updated = client.update_trace_settings(settings={"trace_rate": "10"})
    assert updated["trace_rate"] == "10"
    assert client.get_trace_settings("simple")["trace_rate"] == "10"
    r = _post(server, "/v2/trace/setting", json={"trace_level": ["OFF", "TIMESTAMPS"]})
    assert (r.status_code, r.json()) == (400, {"error": "Expect only one trace level 'OFF' is specified"})


def test_repository_index_without_explicit_mode(client: httpclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert {"name": "simple", "version": "1", "state": "READY"} in index  # no empty "reason", as in Triton
    with pytest.raises(InferenceServerException, match="explicit model load / unload is not allowed"):
        client.load_model("simple")


# -------------------------------------------------------------------------------------- shared memory
def test_system_shared_memory(client: httpclient.InferenceServerClient) -> None:
    handle = shm.create_shared_memory_region("tritium_http_in", "/tritium_http_in", 128)
    out_handle = shm.create_shared_memory_region("tritium_http_out", "/tritium_http_out", 128)
    try:
        shm.set_shared_memory_region(handle, [A, B])
        client.register_system_shared_memory("in", "/tritium_http_in", 128)
        client.register_system_shared_memory("out", "/tritium_http_out", 128)
        assert sorted(r["name"] for r in client.get_system_shared_memory_status()) == ["in", "out"]
        inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_shared_memory("in", 64)
        inputs[1].set_shared_memory("in", 64, offset=64)
        outputs = [httpclient.InferRequestedOutput("OUTPUT0"), httpclient.InferRequestedOutput("OUTPUT1")]
        outputs[0].set_shared_memory("out", 64)
        outputs[1].set_shared_memory("out", 64, offset=64)
        result = client.infer("simple", inputs, outputs=outputs)
        assert result.get_output("OUTPUT0")["shape"] == [1, 16]
        out0 = shm.get_contents_as_numpy(out_handle, np.int32, [1, 16])
        out1 = shm.get_contents_as_numpy(out_handle, np.int32, [1, 16], offset=64)
        np.testing.assert_array_equal(out0, A + B)
        np.testing.assert_array_equal(out1, A - B)
        client.unregister_system_shared_memory("in")
        assert [r["name"] for r in client.get_system_shared_memory_status()] == ["out"]
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(handle)
        shm.destroy_shared_memory_region(out_handle)
    assert client.get_system_shared_memory_status() == []


def test_cuda_shared_memory_without_gpus(client: httpclient.InferenceServerClient, server: Any) -> None:
    assert client.get_cuda_shared_memory_status() == []
    r = _post(
        server,
        "/v2/cudasharedmemory/region/r0/register",
        json={"raw_handle": {"b64": ""}, "device_id": 0, "byte_size": 8},
    )
    assert (r.status_code, r.json()) == (
        400,
        {"error": "failed to register CUDA shared memory region: 'r0', GPUs not supported"},
    )
    client.unregister_cuda_shared_memory()
