"""End to end over gRPC: a real ``tritium serve`` process (example repository, ONNX models) and NVIDIA's
unmodified ``tritonclient.grpc`` (sync) and ``tritonclient.grpc.aio`` clients: every RPC."""

from __future__ import annotations

import asyncio
import json
import queue
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    return tritium_serve_factory(
        f"--model-repository={example_repository}",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--allow-client-shm=true",
    )


@pytest.fixture
def client(server: Any) -> Any:
    with grpcclient.InferenceServerClient(server.grpc_address) as c:
        yield c


def _simple_inputs(a: np.ndarray, b: np.ndarray) -> list[grpcclient.InferInput]:
    inputs = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        tensor = grpcclient.InferInput(name, list(value.shape), "INT32")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.ones((1, 16), dtype=np.int32)


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("no_such_model")
    metadata = client.get_server_metadata()
    assert metadata.name == "triton"
    assert "model_repository" in metadata.extensions and "system_shared_memory" in metadata.extensions
    model = client.get_model_metadata("simple", as_json=True)
    assert model["name"] == "simple" and model["platform"] == "onnxruntime_onnx"
    assert model["inputs"][0] == {"name": "INPUT0", "datatype": "INT32", "shape": ["-1", "16"]}
    config = client.get_model_config("simple").config
    assert (config.name, config.max_batch_size, [i.name for i in config.input]) == ("simple", 8, ["INPUT0", "INPUT1"])


def test_unknown_model(client: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        client.infer("no_such_model", _simple_inputs(A, B))
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_infer_simple(client: Any) -> None:
    result = client.infer("simple", _simple_inputs(A, B), request_id="42")
    assert np.array_equal(result.as_numpy("OUTPUT0"), A + B)
    assert np.array_equal(result.as_numpy("OUTPUT1"), A - B)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("simple", "1", "42")
    assert len(response.raw_output_contents) == 2


def test_infer_batch_and_requested_output(client: Any) -> None:
    a = np.arange(64, dtype=np.int32).reshape(4, 16)
    result = client.infer("simple", _simple_inputs(a, a), outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])
    assert result.as_numpy("OUTPUT0") is None
    assert np.array_equal(result.as_numpy("OUTPUT1"), np.zeros_like(a))


def test_infer_classification(client: Any) -> None:
    result = client.infer(
        "simple", _simple_inputs(A, B), outputs=[grpcclient.InferRequestedOutput("OUTPUT0", class_count=2)]
    )
    top = result.as_numpy("OUTPUT0")
    assert top.shape == (1, 2)
    assert [x.decode() for x in top[0]] == ["16:15", "15:14"]


def test_infer_strings(client: Any) -> None:
    values = np.array([[str(i).encode() for i in range(16)]], dtype=object)
    ones = np.array([[b"1"] * 16], dtype=object)
    inputs = []
    for name, value in (("INPUT0", values), ("INPUT1", ones)):
        tensor = grpcclient.InferInput(name, [1, 16], "BYTES")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer("simple_string", inputs)
    assert [int(x) for x in result.as_numpy("OUTPUT0")[0]] == [i + 1 for i in range(16)]


def test_infer_fp32_identity(client: Any) -> None:
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    tensor = grpcclient.InferInput("INPUT0", [2, 5], "FP32")
    tensor.set_data_from_numpy(x)
    assert np.array_equal(client.infer("identity_fp32", [tensor]).as_numpy("OUTPUT0"), x)


def test_infer_errors_match_triton(client: Any) -> None:
    short = np.arange(15, dtype=np.int32).reshape(1, 15)
    with pytest.raises(InferenceServerException) as info:
        client.infer("simple", _simple_inputs(short, short))
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    # Both inputs are wrong: Triton reports the one it walks first, the last given (observed with 2.51).
    expected = "unexpected shape for input 'INPUT1' for model 'simple'. Expected [-1,16], got [1,15]"
    assert expected in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer("simple", _simple_inputs(A, B)[:1])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expected 2 inputs but got 1 inputs for model 'simple'" in info.value.message()


def test_versions(client: Any) -> None:
    x = np.zeros((1, 4), dtype=np.int32)
    tensor = grpcclient.InferInput("INPUT0", [1, 4], "INT32")
    tensor.set_data_from_numpy(x)
    assert client.infer("simple_versions", [tensor], model_version="1").as_numpy("OUTPUT0").tolist() == [[1] * 4]
    assert client.infer("simple_versions", [tensor]).as_numpy("OUTPUT0").tolist() == [[3] * 4]
    assert not client.is_model_ready("simple_versions", "2")


def test_statistics(client: Any) -> None:
    client.infer("simple", _simple_inputs(A, B))
    stats = client.get_inference_statistics("simple", as_json=True)["model_stats"][0]
    assert stats["name"] == "simple" and int(stats["inference_count"]) >= 1
    assert int(stats["inference_stats"]["success"]["count"]) >= 1
    everything = client.get_inference_statistics()
    assert {s.name for s in everything.model_stats} >= {"simple", "identity_fp32"}


def test_repository_index_load_unload(client: Any) -> None:
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "simple", "version": "1", "state": "READY"} in [
        {k: m[k] for k in ("name", "version", "state") if k in m} for m in index
    ]
    client.unload_model("simple_autocomplete")
    assert not client.is_model_ready("simple_autocomplete")
    client.load_model("simple_autocomplete")
    assert client.is_model_ready("simple_autocomplete")
    config = json.dumps({"name": "identity_fp32", "platform": "onnxruntime_onnx", "max_batch_size": 32})
    client.load_model("identity_fp32", config=config)
    assert client.get_model_config("identity_fp32").config.max_batch_size == 32


def test_system_shared_memory(client: Any) -> None:
    import tritonclient.utils.shared_memory as shm

    handle = shm.create_shared_memory_region("e2e_grpc_shm", "/e2e_grpc_shm", 256)
    try:
        shm.set_shared_memory_region(handle, [A, B])
        client.register_system_shared_memory("e2e_in", "/e2e_grpc_shm", 128)
        client.register_system_shared_memory("e2e_out", "/e2e_grpc_shm", 128, offset=128)
        regions = client.get_system_shared_memory_status(as_json=True)["regions"]
        assert set(regions) >= {"e2e_in", "e2e_out"}
        inputs = []
        for i, name in enumerate(("INPUT0", "INPUT1")):
            tensor = grpcclient.InferInput(name, [1, 16], "INT32")
            tensor.set_shared_memory("e2e_in", 64, offset=64 * i)
            inputs.append(tensor)
        outputs = []
        for i, name in enumerate(("OUTPUT0", "OUTPUT1")):
            output = grpcclient.InferRequestedOutput(name)
            output.set_shared_memory("e2e_out", 64, offset=64 * i)
            outputs.append(output)
        result = client.infer("simple", inputs, outputs=outputs)
        assert result.get_output("OUTPUT0").datatype == "INT32"
        got0 = shm.get_contents_as_numpy(handle, np.int32, [1, 16], offset=128)
        got1 = shm.get_contents_as_numpy(handle, np.int32, [1, 16], offset=192)
        assert np.array_equal(got0, A + B) and np.array_equal(got1, A - B)
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(handle)
    assert not client.get_system_shared_memory_status().regions


def test_cuda_shared_memory_answers_without_cuda(client: Any) -> None:
    assert not client.get_cuda_shared_memory_status().regions
    with pytest.raises(InferenceServerException) as info:
        client.register_cuda_shared_memory("gpu0", b"\0" * 64, 0, 64)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message() == "failed to register CUDA shared memory region: 'gpu0', GPUs not supported"


def test_trace_and_log_settings(client: Any) -> None:
    trace = client.get_trace_settings(as_json=True)["settings"]
    assert "trace_level" in trace and "trace_rate" in trace
    updated = client.update_trace_settings(settings={"trace_rate": "7"}, as_json=True)["settings"]
    assert updated["trace_rate"]["value"] == ["7"]
    log = client.get_log_settings(as_json=True)["settings"]
    assert set(log) >= {"log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}
    updated = client.update_log_settings({"log_verbose_level": 1}, as_json=True)["settings"]
    assert updated["log_verbose_level"] == {"uint32_param": 1}
    client.update_log_settings({"log_verbose_level": 0})


def test_async_infer_and_stream_with_sync_client(client: Any) -> None:
    done: queue.Queue[Any] = queue.Queue()
    client.async_infer("simple", _simple_inputs(A, B), lambda result, error: done.put((result, error)))
    result, error = done.get(timeout=30)
    assert error is None and np.array_equal(result.as_numpy("OUTPUT0"), A + B)

    responses: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        for i in range(5):
            client.async_stream_infer("simple", _simple_inputs(A + i, B), request_id=str(i))
        got = {}
        for _ in range(5):
            result, error = responses.get(timeout=30)
            assert error is None
            got[result.get_response().id] = result.as_numpy("OUTPUT0")
    finally:
        client.stop_stream()
    assert sorted(got) == ["0", "1", "2", "3", "4"]
    assert all(np.array_equal(got[str(i)], A + i + B) for i in range(5))


def test_grpc_health_service(server: Any) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_server_reflection(server: Any) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert "inference.GRPCInferenceService" in {s.name for s in response.list_services_response.service}


async def test_aio_client_concurrent_and_streaming(server: Any) -> None:
    async with aioclient.InferenceServerClient(server.grpc_address) as c:
        assert await c.is_server_ready()
        results = await asyncio.gather(
            *(c.infer("simple", _simple_inputs(A + i, B), request_id=str(i)) for i in range(20))
        )
        for i, result in enumerate(results):
            assert result.get_response().id == str(i)
            assert np.array_equal(result.as_numpy("OUTPUT1"), A + i - B)

        async def requests() -> Any:
            for i in range(10):
                yield {"model_name": "simple", "inputs": _simple_inputs(A * i, B), "request_id": str(i)}

        seen = {}
        async for result, error in c.stream_infer(requests()):
            assert error is None
            seen[result.get_response().id] = result.as_numpy("OUTPUT0")
        assert sorted(seen, key=int) == [str(i) for i in range(10)]
        assert np.array_equal(seen["3"], A * 3 + B)


def test_messages_larger_than_grpc_default_limit(client: Any) -> None:
    """Triton raises gRPC's 4 MiB default to INT32_MAX both ways; so does Tritium."""
    x = np.arange(3 * 1024 * 1024, dtype=np.float32).reshape(1, -1)  # 12 MiB each way
    tensor = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    assert np.array_equal(client.infer("identity_fp32", [tensor]).as_numpy("OUTPUT0"), x)


@pytest.fixture(scope="module")
def tuned_server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    """A server started with every tunable --grpc-* flag set to a non-default value."""
    return tritium_serve_factory(
        f"--model-repository={example_repository}",
        "--model-control-mode=explicit",
        "--load-model=simple",
        "--load-model=identity_fp32",
        "--grpc-keepalive-time=10000",
        "--grpc-keepalive-timeout=5000",
        "--grpc-keepalive-permit-without-calls=true",
        "--grpc-http2-max-pings-without-data=0",
        "--grpc-http2-min-recv-ping-interval-without-data=1000",
        "--grpc-http2-max-ping-strikes=0",
        "--grpc-max-connection-age=600000",
        "--grpc-max-connection-age-grace=10000",
        "--grpc-infer-response-compression-level=high",
        "--grpc-header-forward-pattern=^x-",
        "--grpc-infer-thread-count=4",
        "--grpc-infer-allocation-pool-size=16",
        "--grpc-max-response-pool-size=4",
        "--reuse-grpc-port=true",
    )


def test_tuned_flags_serve_requests(tuned_server: Any) -> None:
    x = np.zeros((1, 100000), dtype=np.float32)  # compressible: the response travels deflated
    tensor = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    options = [("grpc.keepalive_time_ms", 2000), ("grpc.keepalive_permit_without_calls", 1)]
    with grpcclient.InferenceServerClient(tuned_server.grpc_address, channel_args=options) as client:
        result = client.infer("identity_fp32", [tensor], headers={"x-tenant": "a"})
        assert np.array_equal(result.as_numpy("OUTPUT0"), x)
        responses: queue.Queue[Any] = queue.Queue()
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        try:
            for i in range(8):  # more responses than --grpc-max-response-pool-size, all delivered
                client.async_stream_infer("simple", _simple_inputs(A + i, B), request_id=str(i))
            got = sorted(responses.get(timeout=30)[0].get_response().id for _ in range(8))
        finally:
            client.stop_stream()
        assert got == [str(i) for i in range(8)]
