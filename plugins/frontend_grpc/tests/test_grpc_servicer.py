"""Every RPC of the gRPC frontend, in-process, against the small EchoService of conftest.py, through NVIDIA's
unmodified ``tritonclient.grpc.aio`` (and a raw grpc channel where the client cannot express a case)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from grpc_health.v1 import health_pb2
from tritonclient.grpc import service_pb2 as client_pb
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(60)


def _input(name: str, array: np.ndarray, datatype: str | None = None) -> grpcclient.InferInput:
    datatype = datatype or {np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}.get(array.dtype, "BYTES")
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _status(exc: InferenceServerException) -> tuple[str, str]:
    return exc.status(), exc.message()


@pytest.fixture
async def client(served: tuple[Any, Any]) -> Any:
    _, frontend = served
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        yield c


# ------------------------------------------------------------------------------------------- health
async def test_health_and_metadata(client: Any) -> None:
    assert await client.is_server_live()
    assert await client.is_server_ready()
    assert await client.is_model_ready("echo")
    assert not await client.is_model_ready("echo", "7")
    assert not await client.is_model_ready("nope")
    metadata = await client.get_server_metadata()
    assert (metadata.name, metadata.version, list(metadata.extensions)) == (
        "triton",
        "2.73.0",
        ["classification", "sequence"],
    )
    model = await client.get_model_metadata("echo", as_json=True)
    assert model["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": ["-1", "16"]}]
    assert model["versions"] == ["1"] and model["platform"] == "echo"


async def test_unknown_model_is_not_found(client: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        await client.get_model_metadata("nope")
    assert _status(info.value) == ("StatusCode.NOT_FOUND", "Request for unknown model: 'nope' is not found")


async def test_model_ready_bad_version_is_invalid_argument(client: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        await client.is_model_ready("echo", "abc")
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


async def test_server_exiting_is_unavailable(served: tuple[Any, Any], client: Any) -> None:
    service, _ = served
    service.is_stopping = True
    with pytest.raises(InferenceServerException) as info:
        await client.is_server_live()
    assert _status(info.value) == ("StatusCode.UNAVAILABLE", "Server exiting")


async def test_grpc_health_check(served: tuple[Any, Any]) -> None:
    _, frontend = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        response = await check(health_pb2.HealthCheckRequest())
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_server_reflection_lists_and_describes(served: tuple[Any, Any]) -> None:
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    _, frontend = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    services = {s.name for s in responses[0].list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in responses[1].file_descriptor_response.file_descriptor_proto
    ]
    service = next(f for f in files if f.service).service[0]
    assert "ModelStreamInfer" in {m.name for m in service.method}


# ---------------------------------------------------------------------------------- configuration
async def test_model_config_and_statistics(client: Any) -> None:
    config = await client.get_model_config("echo")
    assert (config.config.name, config.config.max_batch_size, config.config.input[0].dims) == ("echo", 8, [16])
    assert config.config.input[0].data_type == 11  # TYPE_FP32
    stats = await client.get_inference_statistics("echo", as_json=True)
    stat = stats["model_stats"][0]
    assert stat["name"] == "echo" and stat["inference_count"] == "4"
    assert stat["inference_stats"]["success"] == {"count": "2", "ns": "2000"}
    assert stat["batch_stats"][0]["batch_size"] == "2"
    assert len((await client.get_inference_statistics()).model_stats) == 2


async def test_repository_control(served: tuple[Any, Any], client: Any) -> None:
    service, _ = served
    index = await client.get_model_repository_index(as_json=True)
    assert index["models"][0] == {"name": "echo", "version": "1", "state": "READY"}
    config = json.dumps({"name": "new", "backend": "echo"})
    await client.load_model("new", config=config, files={"file:1/model.bin": b"\x00\x01"})
    assert service.loaded == [("new", config, {"1/model.bin": b"\x00\x01"})]
    await client.unload_model("new", unload_dependents=True)
    assert service.unloaded == [("new", True)]
    with pytest.raises(InferenceServerException) as info:
        await client.load_model("broken")
    assert _status(info.value) == ("StatusCode.INVALID_ARGUMENT", "failed to load 'broken': no model file")


async def test_repository_name_and_unknown_load_parameter(served: tuple[Any, Any]) -> None:
    _, frontend = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        load = channel.unary_unary(
            "/inference.GRPCInferenceService/RepositoryModelLoad",
            request_serializer=client_pb.RepositoryModelLoadRequest.SerializeToString,
            response_deserializer=client_pb.RepositoryModelLoadResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await load(client_pb.RepositoryModelLoadRequest(repository_name="r", model_name="m"))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == "'repository_name' specification is not supported"
        request = client_pb.RepositoryModelLoadRequest(model_name="m")
        request.parameters["other"].bool_param = True
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await load(request)
        assert info.value.details() == "unrecognized load parameter 'other'."


async def test_trace_and_log_settings(served: tuple[Any, Any], client: Any) -> None:
    service, _ = served
    trace = await client.get_trace_settings(as_json=True)
    assert trace["settings"]["trace_level"] == {"value": ["OFF"]}
    updated = await client.update_trace_settings(
        settings={"trace_rate": "5", "trace_level": ["TIMESTAMPS"]}, as_json=True
    )
    assert updated["settings"]["trace_rate"] == {"value": ["5"]}
    assert service.trace["trace_level"] == ["TIMESTAMPS"] and service.trace["trace_rate"] == "5"
    await client.update_trace_settings(settings={"trace_rate": None})
    assert "trace_rate" not in service.trace

    log = await client.get_log_settings(as_json=True)
    assert log["settings"]["log_info"] == {"bool_param": True}
    assert log["settings"]["log_verbose_level"] == {"uint32_param": 0}
    updated = await client.update_log_settings({"log_verbose_level": 2, "log_info": False}, as_json=True)
    assert updated["settings"]["log_verbose_level"] == {"uint32_param": 2}
    assert service.log["log_info"] is False
    with pytest.raises(InferenceServerException) as info:
        await client.update_log_settings({"log_file": "x.log"})
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


# ---------------------------------------------------------------------------------- shared memory
async def test_system_shared_memory_inference(served: tuple[Any, Any], client: Any) -> None:
    import tritonclient.utils.shared_memory as shm

    data = np.arange(16, dtype=np.int32)
    handle = shm.create_shared_memory_region("grpc_test_region", "/grpc_test_region", 128)
    try:
        shm.set_shared_memory_region(handle, [data])
        await client.register_system_shared_memory("region", "/grpc_test_region", 128)
        status = await client.get_system_shared_memory_status(as_json=True)
        assert status["regions"]["region"] == {"name": "region", "key": "/grpc_test_region", "byte_size": "128"}

        tensor = grpcclient.InferInput("INPUT0", [16], "INT32")
        tensor.set_shared_memory("region", 64)
        output = grpcclient.InferRequestedOutput("OUTPUT0")
        output.set_shared_memory("region", 64, offset=64)
        result = await client.infer("echo", [tensor], outputs=[output])
        assert result.get_output("OUTPUT0").shape == [16]
        assert result.get_response().raw_output_contents == [b""]
        written = shm.get_contents_as_numpy(handle, np.int32, [16], offset=64)
        assert written.tolist() == data.tolist()

        with pytest.raises(InferenceServerException) as info:
            await client.register_system_shared_memory("region", "/grpc_test_region", 128)
        assert info.value.status() == "StatusCode.ALREADY_EXISTS"
        await client.unregister_system_shared_memory("region")
        assert not (await client.get_system_shared_memory_status()).regions
    finally:
        shm.destroy_shared_memory_region(handle)


async def test_shared_memory_disabled(echo_service_class: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service_class(allow_shm=False))
    disabled = "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        for call in (
            c.register_system_shared_memory("r", "/nothing", 8),
            c.unregister_system_shared_memory(),
            c.unregister_cuda_shared_memory(),
        ):
            with pytest.raises(InferenceServerException) as info:
                await call
            assert _status(info.value) == ("StatusCode.UNIMPLEMENTED", disabled)
        assert not (await c.get_system_shared_memory_status()).regions
        tensor = grpcclient.InferInput("INPUT0", [16], "INT32")
        tensor.set_shared_memory("r", 64)
        with pytest.raises(InferenceServerException) as info:
            await c.infer("echo", [tensor])
        assert _status(info.value) == ("StatusCode.NOT_FOUND", "Unable to find shared memory region: 'r'")


async def test_cuda_shared_memory_without_cuda(client: Any) -> None:
    status = await client.get_cuda_shared_memory_status()
    assert not status.regions
    with pytest.raises(InferenceServerException) as info:
        await client.register_cuda_shared_memory("gpu", b"\0" * 64, 0, 64)
    assert _status(info.value) == (
        "StatusCode.INVALID_ARGUMENT",
        "failed to register CUDA shared memory region: 'gpu', GPUs not supported",
    )
    with pytest.raises(InferenceServerException) as info:
        await client.get_cuda_shared_memory_status("gpu")
    assert _status(info.value) == ("StatusCode.NOT_FOUND", "Unable to find cuda shared memory region: 'gpu'")
    await client.unregister_cuda_shared_memory()


# -------------------------------------------------------------------------------------- inference
async def test_infer_raw_outputs_and_parameters(served: tuple[Any, Any], client: Any) -> None:
    service, _ = served
    x = np.arange(32, dtype=np.float32).reshape(2, 16)
    s = np.array([b"a", b"", b"\xff\x00"], dtype=object)
    result = await client.infer(
        "echo",
        [_input("INPUT0", x), _input("INPUT1", s)],
        request_id="r1",
        sequence_id="seq",
        sequence_start=True,
        priority=2,
        timeout=100,
        parameters={"custom": "v", "n": 3},
    )
    assert np.array_equal(result.as_numpy("OUTPUT0"), x)
    assert result.as_numpy("OUTPUT1").tolist() == [b"a", b"", b"\xff\x00"]
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("echo", "1", "r1")
    assert len(response.raw_output_contents) == 2 and not response.outputs[0].HasField("contents")
    assert response.parameters["custom"].string_param == "v"
    request = service.requests[-1]
    assert (request.sequence_id, request.sequence_start, request.priority, request.timeout_us) == ("seq", True, 2, 100)


async def test_requested_outputs_and_classification(served: tuple[Any, Any], client: Any) -> None:
    service, _ = served
    x = np.ones((1, 16), dtype=np.float32)
    out = grpcclient.InferRequestedOutput("OUTPUT0", class_count=3)
    await client.infer("echo", [_input("INPUT0", x), _input("INPUT1", x)], outputs=[out])
    assert [(o.name, o.classification) for o in service.requests[-1].requested_outputs] == [("OUTPUT0", 3)]


async def test_infer_errors(client: Any) -> None:
    x = np.ones((1, 16), dtype=np.float32)
    with pytest.raises(InferenceServerException) as info:
        await client.infer("repeat", [_input("INPUT0", x)])
    assert _status(info.value) == (
        "StatusCode.UNIMPLEMENTED",
        "ModelInfer RPC doesn't support models with decoupled transaction policy",
    )
    with pytest.raises(InferenceServerException) as info:
        await client.infer("echo", [_input("INPUT0", x)], request_id="bad", parameters={"fail": True})
    assert _status(info.value) == ("StatusCode.INTERNAL", "echo failed for 'bad'")
    with pytest.raises(InferenceServerException) as info:
        await client.infer("echo", [_input("INPUT0", x[:, :3]), _input("INPUT0", x)])
    assert _status(info.value) == (
        "StatusCode.INVALID_ARGUMENT",
        "[request id: <id_unknown>] input 'INPUT0' already exists in request",
    )


async def test_compressed_responses(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service, infer_response_compression_level="high")
    x = np.zeros((4, 16), dtype=np.float32)
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        result = await c.infer("echo", [_input("INPUT0", x)])
        assert np.array_equal(result.as_numpy("OUTPUT0"), x)
        results = [r async for r in c.stream_infer(_one_request("echo", x))]
        assert results[0][1] is None


async def _h2load_data_bytes(port: int, method: str, body: bytes, accept: str) -> int:
    """Bytes of response DATA h2load received for 2 calls carrying ``body`` (one gRPC message)."""
    import re
    import struct
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".grpc") as f:
        f.write(b"\0" + struct.pack(">I", len(body)) + body)
        f.flush()
        process = await asyncio.create_subprocess_exec(
            "h2load", "-n", "2", "-c", "1", "-d", f.name,
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", f"grpc-accept-encoding: {accept}",
            f"http://127.0.0.1:{port}/inference.GRPCInferenceService/{method}",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
    text = out.decode()
    assert "2 succeeded" in text, text
    match = re.search(r"headers \(space savings [^)]*\), [^(]*\((\d+)\) data", text)
    assert match, text
    return int(match.group(1))


@pytest.mark.parametrize("method", ["ModelInfer", "ModelStreamInfer"])
async def test_response_compression_on_the_wire(echo_service: Any, make_frontend: Any, method: str) -> None:
    import shutil

    if shutil.which("h2load") is None:
        pytest.skip("h2load (nghttp2-client) is not installed")
    request = client_pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[64, 256])
    request.raw_input_contents.append(np.zeros((64, 256), dtype=np.float32).tobytes())
    body = request.SerializeToString()
    plain = await make_frontend(echo_service)
    compressed = await make_frontend(echo_service, infer_response_compression_level="low")
    accept = "identity,deflate,gzip"
    plain_bytes = await _h2load_data_bytes(plain.port, method, body, accept)
    compressed_bytes = await _h2load_data_bytes(compressed.port, method, body, accept)
    assert plain_bytes > 2 * 64 * 256 * 4
    assert compressed_bytes < plain_bytes / 20


async def test_header_forwarding(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service, header_forward_pattern="^x-fwd")
    x = np.zeros((1, 16), dtype=np.float32)
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        await c.infer("echo", [_input("INPUT0", x)], headers={"x-fwd-user": "alice", "other": "no"})
        assert echo_service.requests[-1].parameters == {"x-fwd-user": "alice"}
    frontend = await make_frontend(echo_service, header_forward_pattern="priority|x")
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        with pytest.raises(InferenceServerException) as info:
            await c.infer("echo", [_input("INPUT0", x)], headers={"priority": "1"})
        assert info.value.message() == "Header 'priority' is reserved for Triton usage and cannot be forwarded."


# --------------------------------------------------------------------------------------- streaming
async def _one_request(model: str, x: np.ndarray, **extra: Any) -> Any:
    yield {"model_name": model, "inputs": [_input("INPUT0", x)], **extra}


async def test_stream_requests_run_concurrently(client: Any) -> None:
    """A slow request does not hold back a fast one sent after it on the same stream."""
    x = np.zeros((1, 16), dtype=np.float32)

    async def requests() -> Any:
        yield {"model_name": "echo", "inputs": [_input("INPUT0", x)], "request_id": "slow",
               "parameters": {"delay_ms": 400}}
        yield {"model_name": "echo", "inputs": [_input("INPUT0", x)], "request_id": "fast"}

    order = []
    async for result, error in client.stream_infer(requests()):
        assert error is None
        order.append(result.get_response().id)
        assert result.get_response().parameters["triton_final_response"].bool_param is True
    assert order == ["fast", "slow"]


async def test_stream_decoupled_responses_and_final_flag(client: Any) -> None:
    x = np.arange(16, dtype=np.float32).reshape(1, 16)

    async def requests() -> Any:
        yield {"model_name": "repeat", "inputs": [_input("INPUT0", x)], "request_id": "a", "parameters": {"repeat": 3}}
        yield {
            "model_name": "repeat",
            "inputs": [_input("INPUT0", x)],
            "request_id": "b",
            "parameters": {"repeat": 1},
        }
        yield {"model_name": "repeat", "inputs": [_input("INPUT0", x)], "request_id": "c", "parameters": {"repeat": 0}}

    seen: dict[str, list[tuple[bool, int]]] = {}
    async for result, error in client.stream_infer(requests()):
        assert error is None
        response = result.get_response()
        seen.setdefault(response.id, []).append(
            (response.parameters["triton_final_response"].bool_param, len(response.outputs))
        )
        if response.outputs:
            assert np.array_equal(result.as_numpy("OUTPUT0"), x)
    assert seen == {"a": [(False, 1), (False, 1), (True, 1)], "b": [(True, 1)]}


async def test_stream_empty_final_response_on_request(served: tuple[Any, Any]) -> None:
    _, frontend = served
    message = client_pb.ModelInferRequest(model_name="repeat", id="e")
    message.parameters["repeat"].int64_param = 1
    message.parameters["triton_enable_empty_final_response"].bool_param = True
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=client_pb.ModelInferRequest.SerializeToString,
            response_deserializer=client_pb.ModelStreamInferResponse.FromString,
        )
        responses = [r async for r in stream(iter([message]))]
    flags = [
        (r.infer_response.parameters["triton_final_response"].bool_param, len(r.infer_response.outputs))
        for r in responses
    ]
    assert flags == [(False, 0), (True, 0)]


async def test_stream_errors_are_in_stream(client: Any) -> None:
    x = np.zeros((1, 16), dtype=np.float32)

    async def requests() -> Any:
        yield {"model_name": "nope", "inputs": [_input("INPUT0", x)], "request_id": "bad"}
        yield {"model_name": "echo", "inputs": [_input("INPUT0", x)], "request_id": "good",
               "parameters": {"delay_ms": 100}}

    results = [r async for r in client.stream_infer(requests())]
    assert len(results) == 2
    result, error = results[0]
    assert result is None and str(error) == "Request for unknown model: 'nope' is not found"
    assert results[1][1] is None and results[1][0].get_response().id == "good"


async def test_stream_error_closes_stream_with_triton_grpc_error(served: tuple[Any, Any]) -> None:
    _, frontend = served
    message = client_pb.ModelInferRequest(model_name="nope", id="bad")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=client_pb.ModelInferRequest.SerializeToString,
            response_deserializer=client_pb.ModelStreamInferResponse.FromString,
        )
        call = stream(iter([message]), metadata=(("triton_grpc_error", "true"),))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Request for unknown model: 'nope' is not found"


async def test_stop_ends_idle_streams(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service)
    x = np.zeros((1, 16), dtype=np.float32)
    gate = asyncio.Event()

    async def requests() -> Any:
        yield {"model_name": "echo", "inputs": [_input("INPUT0", x)], "request_id": "1"}
        await gate.wait()  # never sends more, never closes

    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        stream = c.stream_infer(requests())
        first = await stream.__anext__()
        assert first[0].get_response().id == "1"
        await asyncio.wait_for(frontend.stop(), 10)
        rest = [r async for r in stream]
        assert rest == []


# ---------------------------------------------------------------------------------- restrictions
async def test_restricted_protocols(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service, restricted_protocol=["inference,health:admin-key=secret"])
    x = np.zeros((1, 16), dtype=np.float32)
    expected = (
        "StatusCode.UNAVAILABLE",
        "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'",
    )
    good = {"triton-grpc-protocol-admin-key": "secret"}
    async with aioclient.InferenceServerClient(f"127.0.0.1:{frontend.port}") as c:
        assert (await c.get_server_metadata()).name == "triton"  # metadata is not restricted
        for call in (
            lambda h: c.is_server_live(headers=h),
            lambda h: c.infer("echo", [_input("INPUT0", x)], headers=h),
        ):
            with pytest.raises(InferenceServerException) as info:
                await call(None)
            assert _status(info.value) == expected
            with pytest.raises(InferenceServerException):
                await call({"triton-grpc-protocol-admin-key": "wrong"})
            await call(good)
        with pytest.raises(grpc.aio.AioRpcError) as stream_info:
            _ = [r async for r in c.stream_infer(_one_request("echo", x))]
        assert stream_info.value.details() == expected[1]
        results = [r async for r in c.stream_infer(_one_request("echo", x), headers=good)]
        assert results[0][1] is None
