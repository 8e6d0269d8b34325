"""Hostile clients against a real server: what an attacker sends over HTTP and gRPC, on loopback only.

The whole suite runs twice: against a server with client shared memory allowed and explicit model control
(the most exposed setup), and against the same server with ``--allow-client-shm=false``, where the shared
memory cases check that every shm API refuses. Every case checks the answer (a client error is a 4xx / a
client-side gRPC status, never a stack trace) and then that the server still answers a correct inference.
Load and size tests are bounded in count and time.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritium import DataType
from tritium.testing.fakes import identity_config, write_identity_model, write_model

pytestmark = pytest.mark.skipif(
    not (
        __import__("importlib").util.find_spec("tritium_frontend_http")
        and __import__("importlib").util.find_spec("tritium_frontend_grpc")
    ),
    reason="needs both frontends",
)
FAKES = ("tritium.testing.fakes",)
CLIENT_STATUSES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,  # Triton's UNSUPPORTED: a feature this server or model does not offer
    grpc.StatusCode.UNAVAILABLE,
}
HOSTILE_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
SECRET = b"tritium-hostile-test-secret-" + os.urandom(8).hex().encode()


def _repository(root: Path) -> Path:
    write_identity_model(root, "fp32")
    write_identity_model(root, "int32", datatype=DataType.INT32, dims=(4,))
    write_identity_model(root, "text", datatype=DataType.BYTES)
    queued = identity_config("queued", execute_delay_ms=300, dynamic_batching=True, max_batch_size=1)
    queued.dynamic_batching.default_queue_policy.max_queue_size = 2
    write_model(root, queued, files={"model.identity": b""})
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["shm-allowed", "shm-disabled"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           tritium_serve_factory: Any) -> Iterator[Any]:
    repo = _repository(tmp_path_factory.mktemp("hostile-repo"))
    started = tritium_serve_factory(
        f"--model-repository={repo}",
        f"--allow-client-shm={'true' if request.param else 'false'}",
        "--model-control-mode=explicit",
        "--load-model=*",
        extra_plugins=FAKES,
    )
    started.shm_allowed = request.param
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test (every case of a hypothesis test included: each sends requests that would fail on
    a dead server), the server is live and answers a correct inference over HTTP and gRPC."""
    yield
    if "server" in request.fixturenames:
        assert_serves(request.getfixturevalue("server"))


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret.txt"
    path.write_bytes(SECRET)
    return path


def _http(server: Any) -> str:
    return f"http://{server.http_url}"


def assert_serves(server: Any) -> None:
    """The server is live and answers a correct inference over both protocols."""
    assert server.process.poll() is None, server.log()[-3000:]
    data = np.arange(4, dtype=np.float32).reshape(1, 4)
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        assert client.is_server_live()
        inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_data_from_numpy(data)
        np.testing.assert_array_equal(client.infer("fp32", [inp]).as_numpy("OUTPUT0"), data)
    finally:
        client.close()
    gclient = grpcclient.InferenceServerClient(server.grpc_address)
    try:
        ginp = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
        ginp.set_data_from_numpy(data)
        np.testing.assert_array_equal(gclient.infer("fp32", [ginp]).as_numpy("OUTPUT0"), data)
    finally:
        gclient.close()


def assert_client_error(response: requests.Response) -> None:
    """A request at fault: a 4xx (or Triton's 501 for an unsupported feature) with ``{"error": ...}``, and
    nothing of the server's insides."""
    assert response.status_code < 500 or response.status_code == 501, (response.status_code, response.text)
    assert "Traceback" not in response.text and 'File "' not in response.text
    if response.status_code >= 400:
        if response.headers.get("Content-Type", "").startswith("application/json"):
            assert set(response.json()) == {"error"}, response.text
        else:  # refused by the HTTP parser itself (e.g. control characters in a header): plain text
            assert response.status_code == 400, response.text


# ------------------------------------------------------------------------------------ HTTP fuzzing
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
VALID_INPUT = {"name": "INPUT0", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid int32 request with some fields replaced by arbitrary JSON."""
    tensor: dict[str, Any] = dict(VALID_INPUT)
    doc: dict[str, Any] = {"inputs": [tensor]}
    for key in draw(st.lists(st.sampled_from(["name", "shape", "datatype", "data", "parameters"]), max_size=3)):
        tensor[key] = draw(json_values)
    for key in draw(st.lists(st.sampled_from(["id", "parameters", "outputs", "inputs"]), max_size=2)):
        doc[key] = draw(json_values)
    if draw(st.booleans()):
        tensor["datatype"] = draw(st.sampled_from(["INT8", "UINT64", "FP16", "BF16", "BYTES", "BOOL", "FP64"]))
    if draw(st.booleans()):
        tensor["shape"] = draw(st.lists(st.integers(-(2**64), 2**64), max_size=4))
    return doc


@HOSTILE_SETTINGS
@given(doc=mutated_requests())
def test_http_mutated_json_requests_are_client_errors(server: Any, doc: dict[str, Any]) -> None:
    r = requests.post(f"{_http(server)}/v2/models/int32/infer", data=json.dumps(doc).encode(), timeout=30)
    assert_client_error(r)


@HOSTILE_SETTINGS
@given(
    header=st.binary(max_size=200),
    tail=st.binary(max_size=200),
    length=st.one_of(st.none(), st.integers(-5, 500).map(str), st.text(st.characters(max_codepoint=255), max_size=6)),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity", "x-bogus"]),
)
def test_http_arbitrary_bodies_and_binary_headers_are_client_errors(
    server: Any, header: bytes, tail: bytes, length: str | None, encoding: str | None
) -> None:
    headers = {}
    if length is not None:
        headers["Inference-Header-Content-Length"] = length
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    try:
        r = requests.post(f"{_http(server)}/v2/models/int32/infer", data=header + tail, headers=headers, timeout=30)
    except requests.exceptions.InvalidHeader:
        return  # the client library refused to send it
    assert_client_error(r)


@HOSTILE_SETTINGS
@given(
    elements=st.lists(st.binary(max_size=12), max_size=6),
    declared=st.integers(0, 8),
    garbage=st.binary(max_size=16),
)
def test_http_bytes_encodings_are_checked(server: Any, elements: list[bytes], declared: int, garbage: bytes) -> None:
    """BYTES in the binary extension: 4-byte little-endian length prefixes, whatever the client claims."""
    payload = b"".join(len(e).to_bytes(4, "little") + e for e in elements) + garbage
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "shape": [1, declared],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(payload)},
                }
            ]
        }
    ).encode()
    r = requests.post(
        f"{_http(server)}/v2/models/text/infer",
        data=header + payload,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert_client_error(r)
    if r.status_code == 200:
        assert not garbage and declared == len(elements)


def test_http_silent_wrong_results_are_refused(server: Any) -> None:
    url = f"{_http(server)}/v2/models/int32/infer"
    r = requests.post(url, json={"inputs": [{**VALID_INPUT, "data": [2**40, 1, 2, 3]}]})
    assert r.status_code == 400 and "INPUT0" in r.json()["error"] and "out of range" in r.json()["error"]
    r = requests.post(url, json={"inputs": [{**VALID_INPUT, "data": [-(2**31) - 1, 1, 2, 3]}]})
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = requests.post(url, json={"inputs": [{**VALID_INPUT, "parameters": [1, 2]}]})
    assert r.status_code == 400 and "'INPUT0'" in r.json()["error"]
    r = requests.post(f"{_http(server)}/v2/models/fp32/infer",
                      json={"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [1e39]}]})
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = requests.post(url, json={"inputs": [{**VALID_INPUT, "data": [2**31 - 1, -(2**31), 0, 1]}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2**31 - 1, -(2**31), 0, 1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "failed to parse the request JSON buffer"),
        (b'{"inputs": "x"}', "Unable to parse 'inputs'"),
        (b'{"inputs": [{"name": "INPUT0", "shape": "1,4", "datatype": "INT32", "data": [1,2,3,4]}]}', "'shape'"),
        (b'{"inputs": [{"name": "INPUT0", "shape": [1,4], "datatype": 5, "data": [1,2,3,4]}]}', "'datatype'"),
        (b'{"inputs": [{"name": "INPUT0", "shape": [1,4], "datatype": "INT32", "data": [{}, {}, {}, {}]}]}', "data"),
        (b'{"inputs": [{"name": "INPUT0", "shape": [1,4], "datatype": "INT32", "data": [1,2]}]}', "shape"),
        (b'{"inputs": [{"name": "INPUT0", "shape": [1,-4], "datatype": "INT32", "data": [1,2,3,4]}]}', "shape"),
        (b'{"inputs": [{"name": "\xff\xfe", "shape": [1,4], "datatype": "INT32", "data": [1,2,3,4]}]}', "JSON"),
        (b'{"inputs": [{"name": "INPUT0", "shape": [1,4], "datatype": "INT32", '
         b'"parameters": {"binary_data_size": -1}}]}', "binary_data_size"),
    ],
)
def test_http_client_mistakes_are_400(server: Any, body: bytes, expected: str) -> None:
    r = requests.post(f"{_http(server)}/v2/models/int32/infer", data=body, timeout=30)
    assert r.status_code == 400, r.text
    assert expected in r.json()["error"]


# ------------------------------------------------------------------------------------ gRPC fuzzing
def _raw_call(server: Any, method: str, body: bytes) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            call(body, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


@HOSTILE_SETTINGS
@given(body=st.binary(max_size=300), method=st.sampled_from(["ModelInfer", "ModelMetadata", "RepositoryModelLoad",
                                                              "SystemSharedMemoryRegister", "ModelConfig"]))
def test_grpc_arbitrary_bodies_are_client_errors(server: Any, body: bytes, method: str) -> None:
    code, details = _raw_call(server, method, body)
    assert code in CLIENT_STATUSES, (code, details)
    assert "Traceback" not in details


def test_grpc_non_protobuf_body_is_invalid_argument(server: Any) -> None:
    code, details = _raw_call(server, "ModelInfer", b"\xff" * 11)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "not a valid protobuf message" in details
    code, _ = _raw_call(server, "ServerMetadata", b"\x0b\x0b")
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def _pb() -> Any:
    from tritonclient.grpc import service_pb2

    return service_pb2


@st.composite
def infer_messages(draw: st.DrawFn) -> bytes:
    pb = _pb()
    msg = pb.ModelInferRequest(model_name=draw(st.sampled_from(["int32", "fp32", "text", "nope", ""])))
    for _ in range(draw(st.integers(0, 3))):
        tensor = msg.inputs.add(
            name=draw(st.sampled_from(["INPUT0", "INPUT1", "", "x"])),
            datatype=draw(st.sampled_from(["INT32", "FP32", "BYTES", "BOOL", "UINT64", "FP16", "NOPE", ""])),
            shape=draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-2, 6), max_size=4)),
        )
        choice = draw(st.integers(0, 3))
        if choice == 1:
            tensor.contents.int_contents.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6)))
        elif choice == 2:
            tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=6), max_size=4)))
        elif choice == 3:
            tensor.parameters["shared_memory_region"].string_param = draw(st.text(max_size=6))
            tensor.parameters["shared_memory_byte_size"].int64_param = draw(st.integers(-5, 2**40))
    for _ in range(draw(st.integers(0, 4))):
        msg.raw_input_contents.append(draw(st.binary(max_size=40)))
    for key in draw(st.lists(st.sampled_from(["priority", "timeout", "sequence_id", "triton_x", "k"]), max_size=2)):
        msg.parameters[key].string_param = draw(st.text(max_size=4))
    return bytes(msg.SerializeToString())


@HOSTILE_SETTINGS
@given(body=infer_messages())
def test_grpc_generated_infer_requests_are_client_errors(server: Any, body: bytes) -> None:
    code, details = _raw_call(server, "ModelInfer", body)
    assert code in CLIENT_STATUSES, (code, details)
    assert "Traceback" not in details


def test_grpc_surplus_raw_contents_are_invalid_argument(server: Any) -> None:
    pb = _pb()
    msg = pb.ModelInferRequest(model_name="int32")
    msg.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 4])
    for _ in range(3):
        msg.raw_input_contents.append(np.arange(4, dtype=np.int32).tobytes())
    code, details = _raw_call(server, "ModelInfer", msg.SerializeToString())
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in details


# ---------------------------------------------------------------------------------- shared memory
TRAVERSAL_KEYS = ["../../etc/passwd", "/../../etc/passwd", "/dev/zero", "..%2F..%2Fetc%2Fpasswd", "..", "a/b"]


@pytest.fixture
def region() -> Iterator[shared_memory.SharedMemory]:
    shm = shared_memory.SharedMemory(create=True, size=64)
    yield shm
    shm.close()
    shm.unlink()


def test_shm_keys_cannot_name_files(server: Any, secret_file: Path) -> None:
    keys = [*TRAVERSAL_KEYS, "../../.." + str(secret_file), "/" + "/".join([".."] * 8) + str(secret_file),
            "tritium-no-such-object"]
    hclient = httpclient.InferenceServerClient(server.http_url)
    gclient = grpcclient.InferenceServerClient(server.grpc_address)
    try:
        for key in keys:
            r = requests.post(f"{_http(server)}/v2/systemsharedmemory/region/evil/register",
                              json={"key": key, "offset": 0, "byte_size": 8})
            if not server.shm_allowed:
                assert r.status_code == 501 and "--allow-client-shm=true" in r.json()["error"]
                with pytest.raises(Exception, match="allow-client-shm"):
                    gclient.register_system_shared_memory("evil", key, 8)
                continue
            assert r.status_code == 400, (key, r.text)
            assert r.json()["error"] == f"Unable to open shared memory region: '{key}'"
            with pytest.raises(Exception, match="Unable to open shared memory region") as info:
                gclient.register_system_shared_memory("evil", key, 8)
            assert "StatusCode.INVALID_ARGUMENT" in str(info.value)
        assert hclient.get_system_shared_memory_status() == []
    finally:
        hclient.close()
        gclient.close()
    assert secret_file.read_bytes() == SECRET
    assert_serves(server)


def test_shm_bounds_and_a_shrunk_object_are_client_errors(server: Any, region: shared_memory.SharedMemory) -> None:
    if not server.shm_allowed:
        pytest.skip("covered by test_shm_refused_when_disabled")
    base = f"{_http(server)}/v2/systemsharedmemory/region"
    r = requests.post(f"{base}/big/register", json={"key": "/" + region.name, "offset": 60, "byte_size": 8})
    assert r.status_code == 400
    for body in ({"key": 5, "byte_size": 8}, {"key": "/" + region.name, "byte_size": -1},
                 {"key": "/" + region.name, "offset": "x", "byte_size": 8}, {"key": "/" + region.name}):
        r = requests.post(f"{base}/bad/register", json=body)
        assert r.status_code == 400, (body, r.text)
    r = requests.post(f"{base}/r/register", json={"key": "/" + region.name, "offset": 0, "byte_size": 64})
    assert r.status_code == 200
    try:
        doc = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "INT32", "parameters": {
            "shared_memory_region": "r", "shared_memory_offset": 56, "shared_memory_byte_size": 16}}]}
        r = requests.post(f"{_http(server)}/v2/models/int32/infer", json=doc)
        assert r.status_code == 400 and "Invalid offset + byte size" in r.json()["error"]
        fd = os.open("/dev/shm/" + region.name, os.O_RDWR)
        try:
            os.ftruncate(fd, 0)  # the owner shrinks the object under the server
            doc["inputs"][0]["parameters"]["shared_memory_offset"] = 0
            r = requests.post(f"{_http(server)}/v2/models/int32/infer", json=doc)
            assert r.status_code == 400 and "smaller than when it was registered" in r.json()["error"]
        finally:
            os.ftruncate(fd, 64)
            os.close(fd)
    finally:
        requests.post(f"{base}/r/unregister")
    assert_serves(server)


def test_shm_inference_races_with_unregister(server: Any, region: shared_memory.SharedMemory) -> None:
    if not server.shm_allowed:
        pytest.skip("covered by test_shm_refused_when_disabled")
    np.ndarray((16,), np.int32, region.buf)[:] = np.arange(16)
    base = f"{_http(server)}/v2/systemsharedmemory/region"
    stop = threading.Event()
    statuses: list[int] = []

    def churn() -> None:
        session = requests.Session()
        while not stop.is_set():
            session.post(f"{base}/race/register", json={"key": "/" + region.name, "byte_size": 64})
            session.post(f"{base}/race/unregister")

    churner = threading.Thread(target=churn)
    churner.start()
    session = requests.Session()
    doc = {
        "inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "INT32",
                    "parameters": {"shared_memory_region": "race", "shared_memory_byte_size": 16}}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"shared_memory_region": "race", "shared_memory_offset": 32,
                                                       "shared_memory_byte_size": 16}}],
    }
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            r = session.post(f"{_http(server)}/v2/models/int32/infer", json=doc)
            statuses.append(r.status_code)
            assert_client_error(r)
    finally:
        stop.set()
        churner.join(30)
        requests.post(f"{base}/race/unregister")
    assert 200 in statuses or 404 in statuses
    assert set(statuses) <= {200, 400, 404}
    assert_serves(server)


def test_shm_refused_when_disabled(server: Any, region: shared_memory.SharedMemory) -> None:
    if server.shm_allowed:
        pytest.skip("this server allows client shared memory")
    r = requests.post(f"{_http(server)}/v2/systemsharedmemory/region/r/register",
                      json={"key": "/" + region.name, "byte_size": 8})
    assert r.status_code == 501 and "--allow-client-shm=true" in r.json()["error"]
    r = requests.post(f"{_http(server)}/v2/systemsharedmemory/region/r/unregister")
    assert r.status_code == 501
    gclient = grpcclient.InferenceServerClient(server.grpc_address)
    try:
        with pytest.raises(Exception, match="allow-client-shm"):
            gclient.register_system_shared_memory("r", "/" + region.name, 8)
        assert list(gclient.get_system_shared_memory_status().regions) == []
    finally:
        gclient.close()
    doc = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "INT32", "parameters": {
        "shared_memory_region": "r", "shared_memory_byte_size": 16}}]}
    r = requests.post(f"{_http(server)}/v2/models/int32/infer", json=doc)
    assert r.status_code == 501 and "--allow-client-shm=true" in r.json()["error"]
    assert requests.get(f"{_http(server)}/v2/systemsharedmemory/status").json() == []
    assert_serves(server)


# ---------------------------------------------------------------------------------- model control
@pytest.mark.parametrize(
    "name",
    ["../fp32", "..", "/etc", "a/b", "nope\x00x", "x" * 5000, "fp32/../../etc"],
)
def test_model_control_names_are_confined(server: Any, name: str) -> None:
    quoted = requests.utils.quote(name, safe="")
    r = requests.post(f"{_http(server)}/v2/repository/models/{quoted}/load")
    assert_client_error(r)
    assert r.status_code in (400, 404)
    r = requests.post(f"{_http(server)}/v2/repository/models/{quoted}/unload")
    assert_client_error(r)
    assert_serves(server)


def test_model_control_files_cannot_escape(server: Any, tmp_path: Path) -> None:
    config = json.dumps({"backend": "identity", "max_batch_size": 8, "input": [
        {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}], "output": [
        {"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}]})
    for key in ("file:../../escape.txt", "file:/tmp/escape.txt", "file:1/../../../escape.txt"):
        r = requests.post(f"{_http(server)}/v2/repository/models/escapee/load",
                          json={"parameters": {"config": config, key: "aGVsbG8="}})
        assert r.status_code == 400, (key, r.text)
    assert not Path("/tmp/escape.txt").exists()
    r = requests.post(f"{_http(server)}/v2/repository/models/escapee/load",
                      json={"parameters": {"config": "{not json"}})
    assert_client_error(r)
    assert_serves(server)


# ------------------------------------------------------------------------------ resource exhaustion
def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def test_oversized_grpc_messages_cost_nothing(server: Any) -> None:
    """A 256 MiB ModelInfer for a [1,4] input is refused before it is read (--grpc-max-message-size,
    64 MiB by default), and a 48 MiB one that fits the limit but not the shape costs no more than grpcio's
    own receiving (about 3x the message at its peak, measured with a bare grpc.aio server) and nothing once
    answered: resident memory stays flat over repeated refusals."""
    pid = server.process.pid
    pb = _pb()
    before = _rss_mb(pid)
    big = pb.ModelInferRequest(model_name="int32")
    big.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 4])
    big.raw_input_contents.append(b"\0" * (256 << 20))
    body = big.SerializeToString()
    del big
    for _ in range(3):
        code, details = _raw_call(server, "ModelInfer", body)
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
    del body
    assert _rss_mb(pid) - before < 64, "refused oversized messages raised the server's RSS"
    fits = pb.ModelInferRequest(model_name="int32")
    fits.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 4])
    fits.raw_input_contents.append(b"\0" * (48 << 20))
    body = fits.SerializeToString()
    del fits
    peak_before = _rss_mb(pid, "VmHWM")
    for attempt in range(6):
        code, details = _raw_call(server, "ModelInfer", body)
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "input byte size mismatch" in details
        if attempt == 0:
            peak_growth = _rss_mb(pid, "VmHWM") - peak_before
            assert peak_growth < 3.5 * 48, f"peak RSS grew {peak_growth:.0f} MB for a 48 MB request"
    time.sleep(0.5)
    assert _rss_mb(pid) - before < 120, "refused requests stay resident"
    assert_serves(server)


def test_oversized_http_body_is_refused(server: Any) -> None:
    pid = server.process.pid
    before = _rss_mb(pid)
    header = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "INT32",
                                     "parameters": {"binary_data_size": 100 << 20}}]}).encode()
    r = requests.post(f"{_http(server)}/v2/models/int32/infer", data=header + b"\0" * (100 << 20),
                      headers={"Inference-Header-Content-Length": str(len(header))}, timeout=60)
    assert 400 <= r.status_code < 500
    time.sleep(0.5)
    assert _rss_mb(pid) - before < 64
    assert_serves(server)


def test_idle_connections_do_not_starve_the_server(server: Any) -> None:
    sockets: list[socket.socket] = []
    try:
        for port in (server.http_port, server.grpc_port):
            for _ in range(150):
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for sock in sockets[::7]:
            sock.sendall(b"POST /v2/models/int32/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # never finished
        assert_serves(server)
    finally:
        for sock in sockets:
            sock.close()
    assert_serves(server)


def test_queue_limit_refuses_with_503_not_a_hang(server: Any) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        r = requests.post(f"{_http(server)}/v2/models/queued/infer", timeout=30,
                          json={"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [1]}]})
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(statuses) == 8
    assert statuses.count(200) >= 3 and statuses.count(503) >= 1 and set(statuses) <= {200, 503}
    assert_serves(server)
