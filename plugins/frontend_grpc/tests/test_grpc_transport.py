"""Transport behaviour of the gRPC frontend that the RPC tests do not reach: deadlines, client cancellation,
compressed requests, binary metadata, large messages both ways, shutdown with unary calls in flight, and the
native transport's keepalive pings and maximum connection age. Every test that does not look at raw frames
runs against the transport the suite is configured with (``TRITIUM_TEST_GRPC_TRANSPORT``, native by
default; ``make test`` reruns this file on grpcio) through a real grpc.aio client."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(60)

SERVICE = "/inference.GRPCInferenceService"
NATIVE = os.environ.get("TRITIUM_TEST_GRPC_TRANSPORT", "native") == "native"


def _infer_request(array: np.ndarray, delay_ms: int = 0) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    if delay_ms:
        request.parameters["delay_ms"].int64_param = delay_ms
    return request


def _unary(channel: grpc.aio.Channel, method: str = "ModelInfer", response: Any = pb.ModelInferResponse) -> Any:
    return channel.unary_unary(
        f"{SERVICE}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


def _output(response: pb.ModelInferResponse) -> np.ndarray:
    shape = list(response.outputs[0].shape)
    return np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(shape)


async def test_deadline_exceeded_ends_the_call_and_the_server_keeps_serving(served: tuple[Any, Any]) -> None:
    _, frontend = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        infer = _unary(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await infer(_infer_request(np.ones((1, 4), np.float32), delay_ms=5000), timeout=0.3)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        assert np.array_equal(_output(await infer(_infer_request(x), timeout=10)), x)


async def test_client_cancellation_leaves_the_connection_usable(served: tuple[Any, Any]) -> None:
    _, frontend = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        infer = _unary(channel)
        call = infer(_infer_request(np.ones((1, 4), np.float32), delay_ms=5000))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        x = np.full((3, 4), 7, dtype=np.float32)
        assert np.array_equal(_output(await infer(_infer_request(x), timeout=10)), x)


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
async def test_compressed_requests_are_inflated(served: tuple[Any, Any], compression: grpc.Compression) -> None:
    _, frontend = served
    x = np.zeros((256, 256), dtype=np.float32)
    x[::7] = 3.5
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}", compression=compression) as channel:
        assert np.array_equal(_output(await _unary(channel)(_infer_request(x), timeout=10)), x)


async def test_compressed_request_larger_than_the_limit_once_inflated(
    echo_service: Any, make_frontend: Any
) -> None:
    """A small compressed message that inflates beyond --grpc-max-message-size is refused, not inflated."""
    frontend = await make_frontend(echo_service, max_message_size=1 << 20)
    x = np.zeros((1024, 1024), dtype=np.float32)  # 4 MiB of zeros: a few KiB gzipped
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{frontend.port}", compression=grpc.Compression.Gzip
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _unary(channel)(_infer_request(x), timeout=10)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_large_messages_cross_the_flow_control_windows(echo_service: Any, make_frontend: Any) -> None:
    """40 MiB each way: several times every HTTP/2 window of both sides."""
    frontend = await make_frontend(echo_service)
    x = np.random.default_rng(1).random((10, 1024, 1024), dtype=np.float32)
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}", options=options) as channel:
        infer = _unary(channel)
        results = await asyncio.gather(*(infer(_infer_request(x), timeout=30) for _ in range(2)))
        for result in results:
            assert np.array_equal(_output(result), x)


async def test_binary_and_text_metadata_reach_forwarding(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service, header_forward_pattern="^x-")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        response = await _unary(channel)(
            _infer_request(np.ones((1, 4), np.float32)), metadata=(("x-trace", "abc"),), timeout=10
        )
    assert response.parameters["x-trace"].string_param == "abc"


async def test_stop_lets_unary_calls_in_flight_finish(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service)
    x = np.ones((1, 4), np.float32)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        call = _unary(channel)(_infer_request(x, delay_ms=500), timeout=20)
        await asyncio.sleep(0.2)
        stopping = asyncio.ensure_future(frontend.stop())
        assert np.array_equal(_output(await call), x)
        await asyncio.wait_for(stopping, 10)


# --------------------------------------------------------------------------- native transport frames
async def _read_frames(reader: asyncio.StreamReader, until: Any, timeout: float = 5.0) -> list[tuple[int, int, bytes]]:
    frames: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + timeout
    while True:
        head = await asyncio.wait_for(reader.readexactly(9), max(0.01, deadline - time.monotonic()))
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(reader.readexactly(length), max(0.01, deadline - time.monotonic()))
        frames.append((head[3], head[4], payload))
        if until(frames):
            return frames


async def _h2_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    await writer.drain()
    return reader, writer


@pytest.mark.skipif(not NATIVE, reason="raw frames of the native transport")
async def test_native_keepalive_pings_and_closes_when_unanswered(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(
        echo_service, keepalive_time=200, keepalive_timeout=300, keepalive_permit_without_calls=True,
        http2_max_pings_without_data=0,
    )
    reader, writer = await _h2_connect(frontend.port)
    try:
        frames = await _read_frames(reader, lambda fs: any(kind == 6 and not flags & 1 for kind, flags, _ in fs))
        ping = next(payload for kind, flags, payload in frames if kind == 6 and not flags & 1)
        writer.write(struct.pack(">I", 8)[1:] + bytes((6, 1)) + b"\0\0\0\0" + ping)  # answered: stays open
        await writer.drain()
        await _read_frames(reader, lambda fs: any(kind == 6 and not flags & 1 for kind, flags, _ in fs))
        # Not answered this time: the connection is closed after the keepalive timeout.
        started = time.monotonic()
        await asyncio.wait_for(_until_eof(reader), 5)
        assert time.monotonic() - started < 3
    finally:
        writer.close()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


@pytest.mark.skipif(not NATIVE, reason="raw frames of the native transport")
async def test_native_max_connection_age_sends_goaway(echo_service: Any, make_frontend: Any) -> None:
    frontend = await make_frontend(echo_service, max_connection_age=200, max_connection_age_grace=200)
    reader, writer = await _h2_connect(frontend.port)
    try:
        frames = await _read_frames(reader, lambda fs: any(kind == 7 for kind, _, _ in fs))
        goaway = next(payload for kind, _, payload in frames if kind == 7)
        assert struct.unpack(">II", goaway[:8])[1] == 0  # NO_ERROR: a graceful end
        await asyncio.wait_for(_until_eof(reader), 5)
    finally:
        writer.close()
    # A channel reconnects after the GOAWAY and keeps working.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        x = np.ones((1, 4), np.float32)
        for _ in range(3):
            assert np.array_equal(_output(await _unary(channel)(_infer_request(x), timeout=10)), x)
            await asyncio.sleep(0.25)


@pytest.mark.skipif(not NATIVE, reason="the native transport's handshake timeout")
async def test_native_closes_connections_that_never_start(
    echo_service: Any, make_frontend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tritium_frontend_grpc import _native

    monkeypatch.setattr(_native, "HANDSHAKE_TIMEOUT_SECONDS", 0.3)
    frontend = await make_frontend(echo_service)
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", frontend.port)
    half_reader, half = await asyncio.open_connection("127.0.0.1", frontend.port)
    half.write(b"PRI * HTTP/2.0\r\n")  # half a preface, then nothing
    started_reader, started = await _h2_connect(frontend.port)
    try:
        await asyncio.wait_for(_until_eof(silent_reader), 5)
        await asyncio.wait_for(_until_eof(half_reader), 5)
        # The connection that completed its handshake stays open past the timeout.
        await asyncio.sleep(0.5)
        started.write(struct.pack(">I", 8)[1:] + bytes((6, 0)) + b"\0\0\0\0" + b"stillup!")
        await started.drain()
        frames = await _read_frames(started_reader, lambda fs: any(kind == 6 and flags & 1 for kind, flags, _ in fs))
        assert any(payload == b"stillup!" for kind, _, payload in frames if kind == 6)
    finally:
        for writer in (silent, half, started):
            writer.close()


async def test_a_stream_request_failing_after_it_started_is_answered_in_stream(
    echo_service_class: Any, make_frontend: Any
) -> None:
    """A request the data plane accepted but failed later (as a remote executor fails it) gets its in-stream
    error with its id; the stream goes on."""
    from tritium import TritiumError

    class LateFailures(echo_service_class):  # type: ignore[misc, valid-type]
        def infer_nowait(self, request: Any) -> Any:
            if request.parameters.get("fail_late"):

                async def fail() -> Any:
                    await asyncio.sleep(0.01)
                    raise TritiumError.invalid_arg("failed after it started")

                return fail()
            return super().infer_nowait(request)

    frontend = await make_frontend(LateFailures())
    late = _infer_request(np.ones((1, 4), np.float32))
    late.id = "late"
    late.parameters["fail_late"].bool_param = True
    good = _infer_request(np.full((1, 4), 2, np.float32))
    good.id = "good"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        stream = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        responses = [r async for r in stream(iter([late, good]), timeout=10)]
    by_id = {r.infer_response.id: r for r in responses}
    assert set(by_id) == {"late", "good"}
    assert by_id["late"].error_message == "failed after it started"
    assert by_id["good"].error_message == ""


# ----------------------------------------------------------------- requests the data plane started at once
async def test_started_requests_are_answered_as_they_end(echo_service_class: Any, make_frontend: Any) -> None:
    """A data plane that starts requests at once hands back a Completion: answers, errors, and many in flight
    on one connection, as with any other answer."""
    service = echo_service_class()
    service.start_delay_s = 0.01
    frontend = await make_frontend(service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        infer = _unary(channel)
        arrays = [np.full((1, 4), v, np.float32) for v in range(20)]
        results = await asyncio.gather(*(infer(_infer_request(x), timeout=10) for x in arrays))
        for x, result in zip(arrays, results, strict=True):
            assert np.array_equal(_output(result), x)
        failing = _infer_request(np.ones((1, 4), np.float32))
        failing.parameters["fail"].bool_param = True
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await infer(failing, timeout=10)
        assert info.value.code() is grpc.StatusCode.INTERNAL and "failed" in (info.value.details() or "")
    assert len(service.started) == 21


@pytest.mark.parametrize("ending", ["deadline", "cancel"])
async def test_a_started_request_outlived_by_its_call_ends_nothing_else(
    echo_service_class: Any, make_frontend: Any, ending: str
) -> None:
    service = echo_service_class()
    service.start_delay_s = 0.5
    frontend = await make_frontend(service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        infer = _unary(channel)
        if ending == "deadline":
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await infer(_infer_request(np.ones((1, 4), np.float32)), timeout=0.1)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            call = infer(_infer_request(np.ones((1, 4), np.float32)))
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        service.start_delay_s = 0.0
        x = np.full((2, 4), 3, np.float32)
        assert np.array_equal(_output(await infer(_infer_request(x), timeout=10)), x)
    await asyncio.sleep(0.6)
    assert service.started[0].done()  # the request itself ran to its end


async def test_stop_lets_started_calls_finish(echo_service_class: Any, make_frontend: Any) -> None:
    service = echo_service_class()
    service.start_delay_s = 0.4
    frontend = await make_frontend(service)
    x = np.ones((1, 4), np.float32)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        call = _unary(channel)(_infer_request(x), timeout=20)
        await asyncio.sleep(0.2)
        stopping = asyncio.ensure_future(frontend.stop())
        assert np.array_equal(_output(await call), x)
        await asyncio.wait_for(stopping, 10)


async def test_started_stream_requests_are_answered_in_stream(echo_service_class: Any, make_frontend: Any) -> None:
    service = echo_service_class()
    service.start_delay_s = 0.01
    frontend = await make_frontend(service)
    requests = []
    for v in range(5):
        request = _infer_request(np.full((1, 4), v, np.float32))
        request.id = str(v)
        requests.append(request)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{frontend.port}") as channel:
        stream = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        responses = [r async for r in stream(iter(requests), timeout=10)]
    by_id = {r.infer_response.id: r for r in responses}
    assert set(by_id) == {str(v) for v in range(5)} and len(service.started) == 5
    for v in range(5):
        assert by_id[str(v)].error_message == ""
        assert np.array_equal(_output(by_id[str(v)].infer_response), np.full((1, 4), v, np.float32))
