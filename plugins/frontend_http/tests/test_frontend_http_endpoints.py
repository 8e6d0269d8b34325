"""The HTTP frontend over the kit's reference InferenceService (models in conftest.py, every one
OUTPUT<i> = INPUT<i>): routing, errors, extensions, limits (in-process, real sockets on loopback, NVIDIA's
tritonclient and plain requests)."""

from __future__ import annotations

import base64
import gzip
import json
import mmap
import os
import zlib
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritium_frontend_http import HTTP_OPTIONS, tritium_register_frontends
from tritium_frontend_http._settings import HttpSettings, parse_restricted_apis


def test_spec_declares_http_with_triton_flags() -> None:
    (spec,) = tritium_register_frontends()
    assert spec.name == "http" and spec.enable_flag == "--allow-http"
    flags = {opt.flag: opt for opt in HTTP_OPTIONS}
    assert flags["--http-port"].default == 8000
    assert flags["--http-address"].default == "0.0.0.0"
    assert flags["--http-max-input-size"].default == 1 << 26
    assert flags["--http-restricted-api"].type is list
    assert "--http-header-forward-pattern" in flags and "--http-thread-count" in flags


def test_restricted_api_parsing() -> None:
    parsed = parse_restricted_apis(["model-repository,statistics:admin-key=secret", "inference:k=v"])
    assert parsed == {
        "model-repository": ("admin-key", "secret"),
        "statistics": ("admin-key", "secret"),
        "inference": ("k", "v"),
    }
    with pytest.raises(ValueError, match="unknown restricted api 'bogus'"):
        parse_restricted_apis(["bogus:k=v"])
    with pytest.raises(ValueError, match="multiple config groups"):
        parse_restricted_apis(["health:a=b", "health:c=d"])
    assert HttpSettings.from_options({"max_input_size": 10}).max_input_size == 10


def test_unknown_path_and_wrong_method(http_frontend: Any) -> None:
    base = http_frontend.base
    for path in ("/v2/nope", "/v3", "/v2/models/simple/versions/x", "/v2/models/simple/versions/1/trace/setting"):
        r = requests.get(base + path)
        assert (r.status_code, r.json()) == (404, {"error": "Not Found"}), path
    r = requests.post(base + "/v2/health/live")
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})
    r = requests.get(base + "/v2/models/simple/infer")
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})


def test_health_metadata_and_versions(http_frontend: Any) -> None:
    client = httpclient.InferenceServerClient(http_frontend.url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple") and client.is_model_ready("simple", "1")
    assert not client.is_model_ready("simple", "2")
    r = requests.get(http_frontend.base + "/v2/models/simple/versions/2/ready")
    assert (r.status_code, r.json()) == (400, {"error": "Model version not ready"})
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert client.get_model_metadata("simple")["inputs"][0]["shape"] == [-1, 16]
    r = requests.get(http_frontend.base + "/v2/models/nope")
    assert (r.status_code, r.json()) == (404, {"error": "Request for unknown model: 'nope' is not found"})


def _simple_inputs(binary: bool = True) -> list[httpclient.InferInput]:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [httpclient.InferInput(f"INPUT{i}", [1, 16], "INT32") for i in range(2)]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(np.ones_like(a), binary_data=binary)
    return inputs


@pytest.mark.parametrize("request_compression", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_compression", [None, "gzip", "deflate"])
def test_infer_compression(
    http_frontend: Any, request_compression: str | None, response_compression: str | None
) -> None:
    client = httpclient.InferenceServerClient(http_frontend.url)
    result = client.infer(
        "simple",
        _simple_inputs(),
        request_compression_algorithm=request_compression,
        response_compression_algorithm=response_compression,
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(16).reshape(1, 16))


def test_start_logs_tritons_started_line_with_the_bound_port(
    make_service: Any, run_frontend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Scripts that wait for Triton's ``Started HTTPService at <address>:<port>`` line find it."""
    with caplog.at_level("INFO", logger="tritium.frontend.http"), run_frontend(make_service()) as running:
        port = running.frontend.port
    assert port != 0
    assert f"Started HTTPService at 127.0.0.1:{port}" in [r.getMessage() for r in caplog.records]


def test_compressed_body_limits(make_service: Any, run_frontend: Any) -> None:
    service = make_service()
    with run_frontend(service, max_input_size=4096) as running:
        bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
        assert len(bomb) < 4096
        r = requests.post(running.base + "/v2/models/simple/infer", data=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400
        assert r.json()["error"] == (
            "Decompressed data size exceeds the maximum allowed value of 4096 bytes. "
            "Use --http-max-input-size to increase the limit."
        )
        big = os.urandom(5000)
        r = requests.post(
            running.base + "/v2/models/simple/infer", data=zlib.compress(big), headers={"Content-Encoding": "deflate"}
        )
        assert r.status_code == 400 and "exceeds the maximum allowed" in r.json()["error"]
        r = requests.post(running.base + "/v2/models/simple/infer", data=b"{" + b" " * 5000 + b"}")
        assert r.status_code == 400
        assert r.json()["error"].startswith("request JSON size of 5002 bytes exceeds the maximum allowed input size")
        r = requests.post(running.base + "/v2/models/simple/infer", data=b"x", headers={"Content-Encoding": "br"})
        assert (r.status_code, r.json()) == (501, {"error": "Unsupported compression type"})


def test_chunked_request_body(http_frontend: Any) -> None:
    body = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [[1] * 16]},
            ],
            "outputs": [{"name": "OUTPUT1"}],
        }
    ).encode()
    r = requests.post(http_frontend.base + "/v2/models/simple/infer", data=iter([body[:10], body[10:]]))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["outputs"] == [
        {"name": "OUTPUT1", "datatype": "INT32", "shape": [1, 16], "data": [1] * 16}
    ]


def test_request_parameters_reach_the_service(http_frontend: Any, fake_service: Any) -> None:
    client = httpclient.InferenceServerClient(http_frontend.url)
    client.infer(
        "simple",
        _simple_inputs(),
        request_id="r1",
        sequence_id=7,
        sequence_start=True,
        priority=2,
        timeout=500,
        parameters={"temperature": 0.5, "tag": "x", "flag": True, "n": 3},
        outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=3)],
    )
    request = fake_service.last_request
    assert request is not None
    assert (request.id, request.sequence_id, request.sequence_start, request.sequence_end) == ("r1", 7, True, False)
    assert (request.priority, request.timeout_us) == (2, 500)
    assert request.parameters == {"temperature": 0.5, "tag": "x", "flag": True, "n": 3}
    assert request.requested_outputs[0].classification == 3
    r = requests.post(
        http_frontend.base + "/v2/models/simple/infer",
        json={"inputs": [], "parameters": {"triton_enable_empty_final_response": True}},
    )
    assert r.status_code == 400
    assert r.json()["error"] == (
        "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified."
    )


def test_restricted_api_and_header_forwarding(make_service: Any, run_frontend: Any) -> None:
    service = make_service()
    with run_frontend(
        service,
        restricted_api=["inference,health:infer-key=letmein"],
        header_forward_pattern="^(x-fwd|triton_)",
    ) as running:
        client = httpclient.InferenceServerClient(running.url)
        r = requests.get(running.base + "/v2/health/live")
        assert (r.status_code, r.json()) == (403, {"error": "This API is restricted, expecting header 'infer-key'"})
        r = requests.post(running.base + "/v2/health/live")
        assert r.status_code == 403  # the restriction is checked before the method
        assert requests.get(running.base + "/v2").status_code == 200
        client.infer("simple", _simple_inputs(), headers={"infer-key": "letmein", "X-Fwd-User": "ann"})
        assert service.last_request is not None
        assert service.last_request.parameters == {"X-Fwd-User": "ann"}
        r = requests.post(
            running.base + "/v2/models/simple/infer",
            data=b'{"inputs":[]}',
            headers={"infer-key": "letmein", "triton_x": "1"},
        )
        assert r.status_code == 400 and "is reserved for Triton usage and cannot be forwarded" in r.json()["error"]


def test_raw_binary_request(http_frontend: Any) -> None:
    r = requests.post(
        http_frontend.base + "/v2/models/bytes1/infer", data=b"427", headers={"Inference-Header-Content-Length": "0"}
    )
    assert r.status_code == 200, r.text
    header_length = int(r.headers["Inference-Header-Content-Length"])
    header = json.loads(r.content[:header_length])
    assert header["outputs"][0]["shape"] == [1, 1]
    assert r.content[header_length + 4 :] == b"427"
    r = requests.post(
        http_frontend.base + "/v2/models/echo/infer",
        data=np.arange(8, dtype=np.float32).tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )
    header_length = int(r.headers["Inference-Header-Content-Length"])
    assert np.frombuffer(r.content[header_length:], np.float32).tolist() == list(range(8))


def test_decoupled_model_on_infer_is_501(http_frontend: Any) -> None:
    r = requests.post(http_frontend.base + "/v2/models/repeat/infer", json={"inputs": []})
    assert (r.status_code, r.json()) == (
        501,
        {"error": "HTTP end point doesn't support models with decoupled transaction policy"},
    )


def test_generate_and_stream(http_frontend: Any) -> None:
    base = http_frontend.base + "/v2/models/repeat"
    r = requests.post(base + "/generate", json={"id": "7", "INPUT0": "hello", "parameters": {"repeat": 1}})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    # The response's parameters (the reference echoes the request's, and numbers its responses) are keys too.
    assert r.json() == {
        "OUTPUT0": "hello", "id": "7", "model_name": "repeat", "model_version": "1", "repeat": 1, "index": 0
    }
    r = requests.post(base + "/generate", json={"INPUT0": "hello", "repeat": 2})
    assert r.status_code == 400 and "generate expects model to produce exactly 1 response" in r.json()["error"]
    r = requests.post(base + "/generate_stream", json={"INPUT0": ["a", "b"], "repeat": 3}, stream=True)
    assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: ")]
    assert [e["OUTPUT0"] for e in events] == [["a", "b"]] * 3
    failing = {"id": "f", "INPUT0": "a", "repeat": 3, "fail_at": 1}
    r = requests.post(base + "/generate_stream", json=failing, stream=True)
    events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: ")]
    assert events[1] == {"error": "fake failed at response 1 of 'f'"} and len(events) == 2
    r = requests.post(base + "/generate", json={"INPUT0": "a", "parameters": 1})
    assert "Expected JSON object for keyword: 'parameters'" in r.json()["error"]
    r = requests.post(base + "/generate", json={"INPUT0": "a", "parameters": {"nested": {"x": 1}}})
    assert "Converting keyword: 'parameters': parameter 'nested' has invalid type." in r.json()["error"]
    r = requests.post(base + "/generate", json={"INPUT0": 5})
    assert "attempt to access JSON non-string as string" in r.json()["error"]
    r = requests.post(base + "/generate", data=b"x", headers={"Content-Encoding": "gzip"})
    assert r.json()["error"] == "Unsupported content-encoding, only 'identity' is supported."


def test_system_shared_memory(http_frontend: Any, fake_service: Any) -> None:
    client = httpclient.InferenceServerClient(http_frontend.url)
    key = f"tritium_http_test_{os.getpid()}"
    path = f"/dev/shm/{key}"
    with open(path, "wb") as f:
        f.truncate(256)
    try:
        client.register_system_shared_memory("in", "/" + key, 128)
        client.register_system_shared_memory("out", "/" + key, 128, offset=128)
        status = client.get_system_shared_memory_status()
        assert sorted(s["name"] for s in status) == ["in", "out"]
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 256)
            mm[0:64] = np.arange(16, dtype=np.int32).tobytes()
            mm[64:128] = np.ones(16, dtype=np.int32).tobytes()
            inputs = [httpclient.InferInput(f"INPUT{i}", [1, 16], "INT32") for i in range(2)]
            inputs[0].set_shared_memory("in", 64)
            inputs[1].set_shared_memory("in", 64, offset=64)
            output = httpclient.InferRequestedOutput("OUTPUT0")
            output.set_shared_memory("out", 64)
            result = client.infer("simple", inputs, outputs=[output])
            assert result.get_output("OUTPUT0")["shape"] == [1, 16]
            assert np.frombuffer(mm[128:192], np.int32).tolist() == list(range(16))
            small = httpclient.InferRequestedOutput("OUTPUT0")
            small.set_shared_memory("out", 16)
            r = requests.post(
                http_frontend.base + "/v2/models/simple/infer",
                json={
                    "inputs": [
                        {"name": f"INPUT{i}", "shape": [1, 16], "datatype": "INT32", "data": [0] * 16} for i in range(2)
                    ],
                    "outputs": [
                        {
                            "name": "OUTPUT0",
                            "parameters": {"shared_memory_region": "out", "shared_memory_byte_size": 16},
                        }
                    ],
                },
            )
            assert r.status_code == 400  # Triton: 500; the request is at fault (docs/http.md)
            assert r.json()["error"] == (
                "shared memory size specified with the request for output 'OUTPUT0' (16 bytes) should be at "
                "least 64 bytes to hold the results"
            )
            mm.close()
        client.unregister_system_shared_memory("in")
        assert [s["name"] for s in client.get_system_shared_memory_status()] == ["out"]
        client.unregister_system_shared_memory()
        assert client.get_system_shared_memory_status() == []
    finally:
        fake_service.shared_memory.close()
        os.unlink(path)


def test_shared_memory_disabled_and_cuda(make_service: Any, run_frontend: Any) -> None:
    with run_frontend(make_service(allow_shm=False)) as running:
        base = running.base
        assert requests.get(base + "/v2/systemsharedmemory/status").json() == []
        r = requests.post(base + "/v2/systemsharedmemory/region/r/register", json={"key": "k", "byte_size": 8})
        assert r.status_code == 501
        assert r.json()["error"] == (
            "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
        )
        assert requests.post(base + "/v2/systemsharedmemory/unregister").status_code == 501
        assert requests.get(base + "/v2/cudasharedmemory/status").json() == []
        r = requests.get(base + "/v2/cudasharedmemory/region/r/status")
        assert (r.status_code, r.json()) == (404, {"error": "Unable to find cuda shared memory region: 'r'"})
    with run_frontend(make_service(allow_shm=True)) as running:
        r = requests.post(running.base + "/v2/cudasharedmemory/region/r/register", json={})
        assert (r.status_code, r.json()) == (
            400,
            {"error": "failed to register CUDA shared memory region: 'r', GPUs not supported"},
        )
        assert requests.post(running.base + "/v2/cudasharedmemory/unregister").status_code == 200


def test_repository_logging_trace(http_frontend: Any, fake_service: Any) -> None:
    client = httpclient.InferenceServerClient(http_frontend.url)
    assert client.get_model_repository_index() == [
        {"name": name, "version": "1", "state": "READY"} for name in sorted(fake_service.models)
    ]
    client.load_model("simple", config='{"max_batch_size": 4}', files={"file:1/model.onnx": b"\x00\x01"})
    assert fake_service.loaded[-1] == ("simple", '{"max_batch_size": 4}', {"1/model.onnx": b"\x00\x01"})
    client.unload_model("simple", unload_dependents=True)
    assert fake_service.unloaded[-1] == ("simple", True)
    r = requests.post(http_frontend.base + "/v2/repository/models/broken/load")
    assert (r.status_code, r.json()) == (400, {"error": "failed to load 'broken': no model file"})
    r = requests.post(http_frontend.base + "/v2/repository/index", data=b'{"ready": 1}')
    assert (r.status_code, r.json()) == (400, {"error": "Invalid value for 'ready': expected a boolean"})
    r = requests.post(http_frontend.base + "/v2/repository/r1/models/simple/load")
    assert (r.status_code, r.json()) == (501, {"error": "'repository_name' specification is not supported"})
    r = requests.post(
        http_frontend.base + "/v2/repository/models/simple/load",
        json={"parameters": {"file:1/a": base64.b64encode(b"abc").decode(), "config": "{}"}},
    )
    assert r.status_code == 200 and fake_service.loaded[-1][2] == {"1/a": b"abc"}

    settings = client.update_log_settings({"log_verbose_level": 2, "log_info": False})
    assert settings["log_verbose_level"] == 2 and settings["log_info"] is False
    r = requests.post(http_frontend.base + "/v2/logging", json={"log_file": "/tmp/x"})
    assert r.status_code == 501
    r = requests.post(http_frontend.base + "/v2/logging", json={"log_format": "json"})
    assert (r.status_code, r.json()) == (503, {"error": "invalid argument for --log_format, got: json"})

    trace = client.update_trace_settings(settings={"trace_rate": "5", "trace_level": ["TIMESTAMPS"]})
    assert trace["trace_rate"] == "5" and trace["trace_level"] == ["TIMESTAMPS"]
    r = requests.post(http_frontend.base + "/v2/trace/setting", json={"trace_level": ["OFF", "TENSORS"]})
    assert (r.status_code, r.json()) == (400, {"error": "Expect only one trace level 'OFF' is specified"})
    r = requests.post(http_frontend.base + "/v2/trace/setting", json={"trace_count": "-5"})
    assert r.json() == {"error": "Unable to parse 'trace_count'. Expecting value >= -1, got:-5"}
    r = requests.get(http_frontend.base + "/v2/models/nope/trace/setting")
    assert (r.status_code, r.json()) == (400, {"error": "Request for unknown model : nope"})
    assert client.get_inference_statistics("simple", "1")["model_stats"][0]["version"] == "1"


def test_bad_bodies_never_break_the_server(http_frontend: Any) -> None:
    url = http_frontend.base + "/v2/models/simple/infer"
    cases = [
        (b"{not json", {}, 400, "failed to parse the request JSON buffer: Missing a name for object member. at 1"),
        (b"[" * 5000 + b"]" * 5000, {}, 400, "JSON nesting depth exceeds maximum allowed limit (100)"),
        (
            b'{"inputs":[]}',
            {"Inference-Header-Content-Length": "abc"},
            400,
            "Unable to parse Inference-Header-Content-Length, got: abc",
        ),
        (
            b'{"inputs":[]}',
            {"Inference-Header-Content-Length": "14"},
            400,
            "inference header size should be in range (0, 13), got: 14",
        ),
    ]
    for body, headers, status, message in cases:
        r = requests.post(url, data=body, headers=headers)
        assert r.status_code == status, (r.status_code, r.text)
        if message is not None:
            assert r.json()["error"] == message
    nested = 120
    data: object = 1
    for _ in range(nested):
        data = [data]
    r = requests.post(url, json={"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "INT32", "data": data}]})
    assert r.status_code == 400 and "JSON nesting depth exceeds maximum allowed limit (100)" in r.json()["error"]
    assert requests.get(http_frontend.base + "/v2/health/live").status_code == 200
