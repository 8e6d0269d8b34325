"""End to end over HTTP: model repository control (explicit mode, config and file overrides), restricted
APIs, header forwarding and the input size limit, against real ``tritium serve`` processes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

A = np.arange(16, dtype=np.int32).reshape(1, 16)


def _base(server: Any) -> str:
    return f"http://{server.http_url}"


def _inputs() -> list[httpclient.InferInput]:
    inputs = [httpclient.InferInput(f"INPUT{i}", [1, 16], "INT32") for i in range(2)]
    for x in inputs:
        x.set_data_from_numpy(A)
    return inputs


@pytest.fixture(scope="module")
def explicit_server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    return tritium_serve_factory(
        f"--model-repository={example_repository}", "--model-control-mode=explicit", "--load-model=simple"
    )


def test_repository_load_unload(explicit_server: Any, example_repository: Path) -> None:
    client = httpclient.InferenceServerClient(explicit_server.http_url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["simple"]["state"] == "READY" and "identity_fp32" in index
    assert [m["name"] for m in client.get_model_repository_index() if m.get("state") == "READY"] == ["simple"]
    r = requests.post(_base(explicit_server) + "/v2/repository/index", json={"ready": True})
    assert [m["name"] for m in r.json()] == ["simple"]

    assert not client.is_model_ready("identity_fp32")
    client.load_model("identity_fp32")
    assert client.is_model_ready("identity_fp32")
    client.unload_model("identity_fp32", unload_dependents=True)
    assert not client.is_model_ready("identity_fp32")

    config = client.get_model_config("simple")
    config["max_batch_size"] = 4
    client.load_model("simple", config=json.dumps(config))
    assert client.get_model_config("simple")["max_batch_size"] == 4

    onnx_bytes = (example_repository / "simple" / "1" / "model.onnx").read_bytes()
    copy_config = {
        "name": "simple_copy",
        "backend": "onnxruntime",
        "max_batch_size": 8,
        "input": [{"name": f"INPUT{i}", "data_type": "TYPE_INT32", "dims": [16]} for i in range(2)],
        "output": [{"name": f"OUTPUT{i}", "data_type": "TYPE_INT32", "dims": [16]} for i in range(2)],
    }
    client.load_model("simple_copy", config=json.dumps(copy_config), files={"file:1/model.onnx": onnx_bytes})
    result = client.infer("simple_copy", _inputs())
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + A)

    r = requests.post(_base(explicit_server) + "/v2/repository/other/models/simple/load")
    assert (r.status_code, r.json()) == (501, {"error": "'repository_name' specification is not supported"})
    with pytest.raises(InferenceServerException):
        client.load_model("no_such_model")


@pytest.fixture(scope="module")
def guarded_server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    return tritium_serve_factory(
        f"--model-repository={example_repository}",
        "--http-restricted-api=model-repository,statistics:admin-key=s3cret",
        "--http-restricted-api=inference:infer-key=go",
        "--http-header-forward-pattern=^(x-tenant|triton_)",
        "--http-max-input-size=4096",
    )


def test_restricted_apis(guarded_server: Any) -> None:
    base = _base(guarded_server)
    r = requests.get(base + "/v2/models/stats")
    assert (r.status_code, r.json()) == (403, {"error": "This API is restricted, expecting header 'admin-key'"})
    r = requests.post(base + "/v2/repository/index")
    assert r.status_code == 403
    assert requests.get(base + "/v2/models/stats", headers={"admin-key": "s3cret"}).status_code == 200
    assert requests.get(base + "/v2/models/stats", headers={"admin-key": "wrong"}).status_code == 403
    assert requests.get(base + "/v2/health/ready").status_code == 200  # unrestricted
    client = httpclient.InferenceServerClient(guarded_server.http_url)
    with pytest.raises(InferenceServerException, match="This API is restricted, expecting header 'infer-key'"):
        client.infer("simple", _inputs())
    result = client.infer("simple", _inputs(), headers={"infer-key": "go", "X-Tenant": "acme"})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + A)


def test_reserved_forwarded_header(guarded_server: Any) -> None:
    body = {
        "inputs": [{"name": f"INPUT{i}", "shape": [1, 16], "datatype": "INT32", "data": [0] * 16} for i in range(2)]
    }
    r = requests.post(
        _base(guarded_server) + "/v2/models/simple/infer",
        json=body,
        headers={"infer-key": "go", "triton_secret": "1"},
    )
    assert (r.status_code, r.json()) == (
        400,
        {"error": "Header 'triton_secret' is reserved for Triton usage and cannot be forwarded."},
    )


def test_max_input_size(guarded_server: Any) -> None:
    url = _base(guarded_server) + "/v2/models/simple/infer"
    headers = {"infer-key": "go"}
    r = requests.post(url, data=b"{" + b" " * 5000 + b"}", headers=headers)
    assert r.status_code == 400
    assert r.json()["error"] == (
        "request JSON size of 5002 bytes exceeds the maximum allowed input size of 4096 bytes. "
        "Use --http-max-input-size to increase the limit."
    )
    bomb = gzip.compress(b"{" + b" " * 100_000 + b"}")
    r = requests.post(url, data=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert (r.status_code, r.json()) == (
        400,
        {
            "error": "Decompressed data size exceeds the maximum allowed value of 4096 bytes. "
            "Use --http-max-input-size to increase the limit."
        },
    )
    r = requests.post(url, data=b"\0" * 5000, headers={**headers, "Inference-Header-Content-Length": "0"})
    assert r.status_code == 400 and r.json()["error"].startswith("Raw input has a byte_size (5000 bytes)")
    client = httpclient.InferenceServerClient(guarded_server.http_url)
    result = client.infer("simple", _inputs(), headers=headers, request_compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - A)
