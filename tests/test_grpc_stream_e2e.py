"""End to end: ModelStreamInfer on a real server process with decoupled models, through tritonclient.

The server is ``tritium serve`` (the same CLI code) with the kernel's fake ``identity`` backend added
(``tritium.testing.fakes``: a decoupled identity model answers ``decoupled_repeat`` times, then sends the
final flag; ``execute_delay_ms`` keeps requests in flight)."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.grpc import service_pb2 as client_pb
from tritonclient.utils import InferenceServerException

from tritium import DataType
from tritium.testing import fakes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tritium_serve_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo: Path = tmp_path_factory.mktemp("grpc-stream-models")
    fakes.write_identity_model(repo, "repeat3", DataType.INT32, (-1,), 0, decoupled=True, decoupled_repeat=3)
    fakes.write_identity_model(repo, "repeat0", DataType.INT32, (-1,), 0, decoupled=True, decoupled_repeat=0)
    fakes.write_identity_model(repo, "slow", DataType.INT32, (-1,), 8, execute_delay_ms=300, instance_count=2)
    fakes.write_identity_model(repo, "fast", DataType.INT32, (-1,), 8)
    return tritium_serve_factory(f"--model-repository={repo}", extra_plugins=["tritium.testing.fakes"])


def _inputs(values: list[int], batched: bool = False) -> list[grpcclient.InferInput]:
    array = np.array([values] if batched else values, dtype=np.int32)
    tensor = grpcclient.InferInput("INPUT0", list(array.shape), "INT32")
    tensor.set_data_from_numpy(array)
    return [tensor]


def _stream(
    client: grpcclient.InferenceServerClient, requests: list[dict[str, Any]], expected: int, **kw: Any
) -> list[Any]:
    responses: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)), **kw)
    try:
        for request in requests:
            client.async_stream_infer(**request)
        got = [responses.get(timeout=30) for _ in range(expected)]
    finally:
        client.stop_stream()
    assert responses.empty()
    return got


def _final(result: Any) -> bool:
    return result.get_response().parameters["triton_final_response"].bool_param


def test_decoupled_responses_and_final_flag(server: Any) -> None:
    """The model sends 3 responses, then the final flag alone: as in Triton, the flag-only final response
    reaches the client only when the request set ``triton_enable_empty_final_response``."""
    with grpcclient.InferenceServerClient(server.grpc_address) as client:
        got = _stream(client, [{"model_name": "repeat3", "inputs": _inputs([7, 8]), "request_id": "r"}], 3)
        with_final = _stream(
            client,
            [{"model_name": "repeat3", "inputs": _inputs([9]), "request_id": "f", "enable_empty_final_response": True}],
            4,
        )
    assert [e for _, e in got] == [None, None, None]
    assert [_final(r) for r, _ in got] == [False, False, False]
    assert all(r.as_numpy("OUTPUT0").tolist() == [7, 8] for r, _ in got)
    assert {r.get_response().id for r, _ in got} == {"r"}
    assert [(_final(r), len(r.get_response().outputs)) for r, _ in with_final] == [
        (False, 1),
        (False, 1),
        (False, 1),
        (True, 0),
    ]


def test_decoupled_empty_final_response_when_asked(server: Any) -> None:
    with grpcclient.InferenceServerClient(server.grpc_address) as client:
        request = {"model_name": "repeat0", "inputs": _inputs([1]), "enable_empty_final_response": True}
        got = _stream(client, [request], 1)
    result, error = got[0]
    assert error is None and _final(result) and not result.get_response().outputs


def test_decoupled_model_on_unary_rpc_is_rejected(server: Any) -> None:
    with grpcclient.InferenceServerClient(server.grpc_address) as client, pytest.raises(
        InferenceServerException
    ) as info:
        client.infer("repeat3", _inputs([1]))
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert info.value.message() == "ModelInfer RPC doesn't support models with decoupled transaction policy"


def test_requests_in_flight_on_one_stream_answer_as_they_complete(server: Any) -> None:
    with grpcclient.InferenceServerClient(server.grpc_address) as client:
        requests = [
            {"model_name": "slow", "inputs": _inputs([1], batched=True), "request_id": "slow"},
            {"model_name": "fast", "inputs": _inputs([2], batched=True), "request_id": "fast"},
            {"model_name": "repeat3", "inputs": _inputs([3]), "request_id": "dec"},
        ]
        got = _stream(client, requests, 5)
    order = [r.get_response().id for r, e in got]
    assert order[-1] == "slow"  # sent first, answered last
    assert order.count("dec") == 3 and order.count("fast") == 1


def test_errors_in_stream_keep_the_stream_open(server: Any) -> None:
    with grpcclient.InferenceServerClient(server.grpc_address) as client:
        requests = [
            {"model_name": "nope", "inputs": _inputs([1]), "request_id": "bad"},
            {"model_name": "fast", "inputs": _inputs([1, 2]), "request_id": "shape"},
            {"model_name": "fast", "inputs": _inputs([5], batched=True), "request_id": "good"},
        ]
        got = _stream(client, requests, 3)
    errors = sorted(str(e) for _, e in got if e is not None)
    assert len(errors) == 2
    assert any("Request for unknown model: 'nope'" in e for e in errors)
    assert [r.as_numpy("OUTPUT0").tolist() for r, e in got if e is None] == [[[5]]]


def test_triton_grpc_error_header_closes_the_stream(server: Any) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=client_pb.ModelInferRequest.SerializeToString,
            response_deserializer=client_pb.ModelStreamInferResponse.FromString,
        )
        call = stream(iter([client_pb.ModelInferRequest(model_name="nope")]), metadata=(("triton_grpc_error", "true"),))
        with pytest.raises(grpc.RpcError) as info:
            list(call)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_aio_stream_decoupled(server: Any) -> None:
    async with aioclient.InferenceServerClient(server.grpc_address) as client:

        async def requests() -> Any:
            for i in range(4):
                yield {"model_name": "repeat3", "inputs": _inputs([i]), "request_id": str(i)}

        finals: dict[str, list[bool]] = {}
        async for result, error in client.stream_infer(requests()):
            assert error is None
            finals.setdefault(result.get_response().id, []).append(_final(result))
    assert finals == {str(i): [False, False, False] for i in range(4)}
