"""The native transport's HTTP/2 on the wire: hand-built frames on a raw socket against a started frontend.

What a client sees: the server's SETTINGS first, ACKs of its SETTINGS and PINGs, GOAWAY with the RFC 9113
error code for a connection it breaks (bad preface, oversized frame, even stream id), gRPC answers (status in
trailers) for requests whose header block may be split over CONTINUATION frames, the ping-abuse policy's
ENHANCE_YOUR_CALM, and (fuzzed) that no frame sequence breaks the server for the next client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import grpc
import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as client_pb
from tritonclient.grpc import service_pb2_grpc as client_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM = 0, 1, 2, 6, 11
SETTINGS_MAX_FRAME_SIZE = 5
SERVICE = "/inference.GRPCInferenceService"
TIMEOUT = 5.0

Frame = tuple[int, int, int, bytes]


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def request_block(path: str, encoder: hpack.Encoder | None = None) -> bytes:
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    return (encoder or hpack.Encoder()).encode(headers)


def grpc_message(payload: bytes = b"") -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class Peer:
    """A raw HTTP/2 client connection: frames out as built, frames in parsed (every read bounded in time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = hpack.Decoder()

    @classmethod
    async def open(cls, port: int, preface: bytes = PREFACE + frame(SETTINGS, 0, 0)) -> Peer:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        peer = cls(reader, writer)
        if preface:
            await peer.send(preface)
        return peer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def read(self) -> Frame | None:
        """The next frame, None at the end of the connection."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(9), TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = int.from_bytes(header[:3], "big")
        payload = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        return header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFFFFFF, payload

    async def until(self, kind: int, flags: int | None = None) -> Frame:
        """Frames up to the first of ``kind`` (with ``flags`` set, when given); fails at a GOAWAY or the end."""
        while True:
            got = await self.read()
            assert got is not None, f"connection closed while waiting for frame type {kind}"
            if got[0] == kind and (flags is None or got[1] & flags == flags):
                return got
            assert got[0] != GOAWAY, f"GOAWAY {goaway(got)} while waiting for frame type {kind}"

    async def goaway_then_close(self) -> tuple[int, bytes]:
        """The GOAWAY's error code and debug data, after which the server must close the connection."""
        while True:
            got = await self.read()
            assert got is not None, "connection closed without a GOAWAY"
            if got[0] == GOAWAY:
                break
        assert await self.read() is None, "connection still open after GOAWAY"
        return goaway(got)

    async def response(self, stream_id: int) -> tuple[list[Frame], list[dict[str, str]]]:
        """The frames of one answer up to its END_STREAM, and its header blocks decoded (trailers last).

        Every HEADERS block of the connection is decoded in order (HPACK state is per connection)."""
        frames: list[Frame] = []
        blocks: list[dict[str, str]] = []
        while True:
            got = await self.read()
            assert got is not None, "connection closed before the answer ended"
            assert got[0] != GOAWAY, f"GOAWAY {goaway(got)}"
            if got[0] == HEADERS:
                assert got[1] & END_HEADERS  # the server's blocks here are small
                decoded = self.headers(got[3])
                if got[2] == stream_id:
                    blocks.append(decoded)
            if got[2] != stream_id or got[0] not in (HEADERS, DATA):
                continue
            frames.append(got)
            if got[0] == HEADERS and got[1] & END_STREAM:
                return frames, blocks

    def headers(self, block: bytes) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in self.decoder.decode(block, raw=True)}

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


def goaway(got: Frame) -> tuple[int, bytes]:
    _, code = struct.unpack(">II", got[3][:8])
    return code, got[3][8:]


@pytest.fixture
async def port(echo_service: Any, make_frontend: Any) -> int:
    """The port of a frontend on the native transport (these are its wire tests, whatever the suite's default)."""
    frontend = await make_frontend(echo_service, transport="native")
    return int(frontend.port)


@pytest.fixture
async def peer(port: int) -> AsyncIterator[Peer]:
    connection = await Peer.open(port)
    try:
        yield connection
    finally:
        await connection.close()


async def server_live(port: int) -> bool:
    """A ServerLive call through grpc.aio (a fresh client connection)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = client_grpc.GRPCInferenceServiceStub(channel)
        response = await stub.ServerLive(client_pb.ServerLiveRequest(), timeout=TIMEOUT)
    return bool(response.live)


# ------------------------------------------------------------------------------------- connection
async def test_a_non_http2_preface_gets_goaway_protocol_error(port: int) -> None:
    peer = await Peer.open(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        code, _ = await peer.goaway_then_close()
        assert code == PROTOCOL_ERROR
    finally:
        await peer.close()


async def test_a_short_non_http2_preface_is_refused_at_once(port: int) -> None:
    peer = await Peer.open(port, b"GET /\r\n")
    try:
        assert (await peer.goaway_then_close())[0] == PROTOCOL_ERROR
    finally:
        await peer.close()


async def test_a_preface_not_followed_by_settings_gets_protocol_error(port: int) -> None:
    peer = await Peer.open(port, PREFACE + frame(PING, 0, 0, b"no-setts"))
    try:
        while True:  # today the PING is answered; it must not be
            got = await peer.read()
            assert got is not None, "connection closed without a GOAWAY"
            assert got[0] != PING, "the PING was answered"
            if got[0] == GOAWAY:
                assert goaway(got)[0] == PROTOCOL_ERROR
                break
    finally:
        await peer.close()


async def test_server_settings_come_first_and_ours_are_acked(port: int) -> None:
    peer = await Peer.open(port, b"")
    try:
        kind, flags, stream_id, payload = await peer.read() or (None, 0, 0, b"")
        assert (kind, flags, stream_id) == (SETTINGS, 0, 0)
        values = dict(struct.iter_unpack(">HI", payload))
        assert values[SETTINGS_MAX_FRAME_SIZE] >= 16384
        await peer.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 20)))
        assert (await peer.until(SETTINGS, ACK))[3] == b""
    finally:
        await peer.close()


async def test_the_preface_may_arrive_byte_by_byte(port: int) -> None:
    peer = await Peer.open(port, b"")
    try:
        for byte in PREFACE + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"12345678"):
            await peer.send(bytes((byte,)))
        assert (await peer.until(PING, ACK))[3] == b"12345678"
    finally:
        await peer.close()


async def test_ping_is_answered_with_its_payload(peer: Peer) -> None:
    await peer.send(frame(PING, 0, 0, b"\x00\x01\x02\x03\xfc\xfd\xfe\xff"))
    _, flags, stream_id, payload = await peer.until(PING)
    assert (flags, stream_id, payload) == (ACK, 0, b"\x00\x01\x02\x03\xfc\xfd\xfe\xff")


async def test_a_frame_above_the_advertised_size_gets_frame_size_error(port: int) -> None:
    peer = await Peer.open(port, b"")
    try:
        advertised = dict(struct.iter_unpack(">HI", (await peer.until(SETTINGS))[3]))[SETTINGS_MAX_FRAME_SIZE]
        await peer.send(PREFACE + frame(SETTINGS, 0, 0))
        too_big = (advertised + 1).to_bytes(3, "big") + bytes((DATA, 0)) + (1).to_bytes(4, "big")
        await peer.send(too_big)  # the header alone is refused (no unread payload left behind at the close)
        assert (await peer.goaway_then_close())[0] == FRAME_SIZE_ERROR
    finally:
        await peer.close()


async def test_an_even_stream_id_gets_protocol_error(peer: Peer) -> None:
    await peer.send(frame(HEADERS, END_HEADERS, 2, request_block(f"{SERVICE}/ServerLive")))
    assert (await peer.goaway_then_close())[0] == PROTOCOL_ERROR


async def test_rapid_pings_without_calls_get_enhance_your_calm(peer: Peer) -> None:
    """Defaults (5 min between pings without calls, 2 strikes): the first ping is free, the next two are
    strikes, the fourth closes the connection with ENHANCE_YOUR_CALM "too_many_pings"."""
    for i in range(3):
        await peer.send(frame(PING, 0, 0, bytes((i,)) * 8))
        assert (await peer.until(PING, ACK))[3] == bytes((i,)) * 8
    await peer.send(frame(PING, 0, 0, b"\x03" * 8))
    code, debug = await peer.goaway_then_close()
    assert (code, debug) == (ENHANCE_YOUR_CALM, b"too_many_pings")


async def test_a_short_goaway_gets_frame_size_error(peer: Peer) -> None:
    await peer.send(frame(GOAWAY, 0, 0, b""))
    code, _ = await peer.goaway_then_close()
    assert code == FRAME_SIZE_ERROR


async def test_a_client_goaway_on_an_idle_connection_is_answered_and_closes_it(peer: Peer) -> None:
    await peer.send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR)))
    code, _ = await peer.goaway_then_close()
    assert code == NO_ERROR


async def test_a_client_goaway_lets_its_open_call_finish_first(peer: Peer) -> None:
    await peer.send(
        frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ServerLive"))
        + frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR))
        + frame(DATA, END_STREAM, 1, grpc_message(client_pb.ServerLiveRequest().SerializeToString()))
    )
    _, (*_, trailers) = await peer.response(1)
    assert trailers["grpc-status"] == "0"
    code, _ = await peer.goaway_then_close()
    assert code == NO_ERROR


# ------------------------------------------------------------------------------------------ calls
async def test_a_unary_call_gets_headers_data_and_ok_trailers(peer: Peer) -> None:
    await peer.send(
        frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ServerLive"))
        + frame(DATA, END_STREAM, 1, grpc_message(client_pb.ServerLiveRequest().SerializeToString()))
    )
    frames, blocks = await peer.response(1)
    assert [kind for kind, *_ in frames] == [HEADERS, DATA, HEADERS]
    headers, trailers = blocks
    assert headers[":status"] == "200"
    assert headers["content-type"].startswith("application/grpc")
    body = frames[1][3]
    assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
    assert client_pb.ServerLiveResponse.FromString(body[5:]).live
    assert trailers["grpc-status"] == "0"


async def test_a_model_infer_call_over_raw_frames(peer: Peer) -> None:
    request = client_pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="INPUT0", datatype="INT32", shape=[4])
    request.raw_input_contents.append(struct.pack("<4i", 1, 2, 3, -4))
    await peer.send(
        frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ModelInfer"))
        + frame(DATA, END_STREAM, 1, grpc_message(request.SerializeToString()))
    )
    frames, (*_, trailers) = await peer.response(1)
    assert trailers["grpc-status"] == "0", trailers
    body = b"".join(payload for kind, _, _, payload in frames if kind == DATA)
    response = client_pb.ModelInferResponse.FromString(body[5:])
    assert response.model_name == "echo"
    assert [output.name for output in response.outputs] == ["OUTPUT0"]
    assert response.raw_output_contents[0] == struct.pack("<4i", 1, 2, 3, -4)


async def test_answers_wait_for_the_clients_flow_control_window(port: int) -> None:
    """A 3-byte stream window: 3 bytes of the 7-byte answer, nothing more until the client opens the window."""
    peer = await Peer.open(port, PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 3)))
    try:
        await peer.until(SETTINGS, ACK)
        await peer.send(
            frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ServerLive"))
            + frame(DATA, END_STREAM, 1, grpc_message())
        )
        headers = await peer.until(HEADERS)
        assert not headers[1] & END_STREAM
        assert peer.headers(headers[3])[":status"] == "200"
        first = await peer.until(DATA)
        assert len(first[3]) == 3 and not first[1] & END_STREAM
        # Nothing more is sent: a PING overtakes the rest of the answer.
        await peer.send(frame(PING, 0, 0, b"windowed"))
        got = await peer.read()
        assert got is not None and got[0] == PING and got[3] == b"windowed", got
        await peer.send(frame(WINDOW_UPDATE, 0, 1, (100).to_bytes(4, "big")))
        frames, (*_, trailers) = await peer.response(1)
        assert [kind for kind, *_ in frames] == [DATA, HEADERS]
        assert len(frames[0][3]) == 4
        assert client_pb.ServerLiveResponse.FromString((first[3] + frames[0][3])[5:]).live
        assert trailers["grpc-status"] == "0"
    finally:
        await peer.close()


async def test_a_larger_initial_window_releases_held_answers(port: int) -> None:
    peer = await Peer.open(port, PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    try:
        await peer.until(SETTINGS, ACK)
        await peer.send(
            frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ServerLive"))
            + frame(DATA, END_STREAM, 1, grpc_message())
        )
        assert peer.headers((await peer.until(HEADERS))[3])[":status"] == "200"
        await peer.send(frame(PING, 0, 0, b"held-bck"))
        got = await peer.read()
        assert got is not None and got[0] == PING and got[3] == b"held-bck", got
        await peer.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)))
        frames, (*_, trailers) = await peer.response(1)
        assert [kind for kind, *_ in frames] == [DATA, HEADERS]
        assert trailers["grpc-status"] == "0"
    finally:
        await peer.close()


async def test_streams_beyond_max_concurrent_streams_are_refused(port: int) -> None:
    peer = await Peer.open(port, b"")
    try:
        advertised = dict(struct.iter_unpack(">HI", (await peer.until(SETTINGS))[3]))[3]
        await peer.send(PREFACE + frame(SETTINGS, 0, 0))
        encoder = hpack.Encoder()
        # Calls that stay open (no END_STREAM), up to the limit, then one more.
        opened = b"".join(
            frame(HEADERS, END_HEADERS, 2 * i + 1, request_block(f"{SERVICE}/ServerLive", encoder))
            for i in range(advertised + 1)
        )
        await peer.send(opened)
        _, _, stream_id, payload = await peer.until(RST_STREAM)
        assert (stream_id, int.from_bytes(payload, "big")) == (2 * advertised + 1, 7)  # REFUSED_STREAM
        # The open ones still answer.
        await peer.send(frame(DATA, END_STREAM, 1, grpc_message()))
        _, (*_, trailers) = await peer.response(1)
        assert trailers["grpc-status"] == "0"
    finally:
        await peer.close()


async def test_several_calls_on_one_connection_share_the_hpack_table(peer: Peer) -> None:
    encoder = hpack.Encoder()
    for stream_id in (1, 3, 5):
        await peer.send(
            frame(HEADERS, END_HEADERS, stream_id, request_block(f"{SERVICE}/ServerLive", encoder))
            + frame(DATA, END_STREAM, stream_id, grpc_message())
        )
        _, (*_, trailers) = await peer.response(stream_id)
        assert trailers["grpc-status"] == "0"


async def test_an_unknown_method_gets_unimplemented(peer: Peer) -> None:
    await peer.send(
        frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/NoSuchMethod"))
        + frame(DATA, END_STREAM, 1, grpc_message())
    )
    frames, (*_, trailers) = await peer.response(1)
    assert len(frames) == 1  # a trailers-only answer
    assert trailers[":status"] == "200"
    assert trailers["grpc-status"] == "12"


async def test_a_header_block_split_over_continuation_frames(peer: Peer) -> None:
    block = request_block(f"{SERVICE}/ServerLive")
    first, second, third = block[:3], block[3:7], block[7:]
    await peer.send(
        frame(HEADERS, 0, 1, first)
        + frame(CONTINUATION, 0, 1, second)
        + frame(CONTINUATION, END_HEADERS, 1, third)
        + frame(DATA, END_STREAM, 1, grpc_message())
    )
    _, (*_, trailers) = await peer.response(1)
    assert trailers["grpc-status"] == "0"


async def test_too_much_metadata_is_refused_and_the_table_stays_in_step(peer: Peer) -> None:
    """17 KiB of metadata (over the 16 KiB header list bound): RESOURCE_EXHAUSTED; the fields still entered
    the HPACK table, so the next call's indexed references to them decode."""
    encoder = hpack.Encoder()
    metadata = [(f"x-m{i:02}", "v" * 1000) for i in range(17)]
    block = request_block(f"{SERVICE}/ServerLive", encoder) + encoder.encode(metadata)
    await peer.send(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, END_STREAM, 1, grpc_message()))
    _, (*_, trailers) = await peer.response(1)
    assert trailers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
    assert "metadata" in trailers.get("grpc-message", "")
    block = request_block(f"{SERVICE}/ServerLive", encoder) + encoder.encode(metadata[-2:])
    assert len(block) < 100  # the metadata indexed (the pseudo-headers evicted by it come again)
    await peer.send(frame(HEADERS, END_HEADERS, 3, block) + frame(DATA, END_STREAM, 3, grpc_message()))
    _, (*_, trailers) = await peer.response(3)
    assert trailers["grpc-status"] == "0"


async def test_an_endless_header_block_gets_enhance_your_calm(peer: Peer) -> None:
    """Past 64 KiB of HEADERS plus CONTINUATION frames the block is refused (the last frame crosses the bound,
    so the server has read everything when it closes)."""
    block = request_block(f"{SERVICE}/ServerLive")
    continuations = b"".join(frame(CONTINUATION, 0, 1, b"\x82" * 16384) for _ in range(4))
    await peer.send(frame(HEADERS, 0, 1, block) + continuations)
    assert (await peer.goaway_then_close())[0] == ENHANCE_YOUR_CALM


async def test_a_frame_between_headers_and_continuation_gets_protocol_error(peer: Peer) -> None:
    block = request_block(f"{SERVICE}/ServerLive")
    await peer.send(frame(HEADERS, 0, 1, block[:3]) + frame(PING, 0, 0, b"\x00" * 8))
    assert (await peer.goaway_then_close())[0] == PROTOCOL_ERROR


async def test_an_empty_header_name_is_a_malformed_request_not_an_internal_error(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    block = request_block(f"{SERVICE}/ServerLive") + b"\x00\x00\x01x"  # literal, new name "", value "x"
    await peer.send(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, END_STREAM, 1, grpc_message()))
    while True:
        got = await peer.read()
        if got is None or got[0] in (GOAWAY, RST_STREAM) or (got[0] == HEADERS and got[1] & END_STREAM):
            break
    assert got is not None
    assert not (got[0] == GOAWAY and goaway(got)[0] == INTERNAL_ERROR)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_unary_call_does_not_buffer_unbounded_request_data(peer: Peer) -> None:
    """Past the first request message a unary call has nothing to read: the server must not keep opening the
    stream's window (grpc-core leaves the extra messages unread, so flow control stops the client) or must
    end the call. Here 10 MiB of 1 MiB messages go out on one unary stream (more than its 8 MiB window)."""
    await peer.send(frame(HEADERS, END_HEADERS, 1, request_block(f"{SERVICE}/ServerLive")))
    message = grpc_message(b"\x00" * ((1 << 20) - 64))
    stream_window = 0
    ended = False
    for _ in range(10):
        await peer.send(frame(DATA, 0, 1, message) + frame(PING, 0, 0, b"barrier!"))
        while True:
            got = await peer.read()
            assert got is not None and got[0] != GOAWAY, got
            if got[0] == PING and got[3] == b"barrier!":
                break
            if got[2] == 1 and got[0] == WINDOW_UPDATE:
                stream_window += int.from_bytes(got[3], "big")
            if got[2] == 1 and (got[0] == RST_STREAM or (got[0] == HEADERS and got[1] & END_STREAM)):
                ended = True
        if ended:
            break
    assert ended or stream_window == 0, f"stream window reopened by {stream_window} bytes, call still open"


# ------------------------------------------------------------------------------------------- fuzz
stream_ids = st.one_of(st.sampled_from((0, 1, 2, 3, 5, 7, 2**31 - 1)), st.integers(0, 2**31 - 1))
random_frames = st.builds(
    frame,
    st.integers(0, 12),
    st.integers(0, 255),
    stream_ids,
    st.binary(max_size=300),
)
# Well-formed pieces too, so that the fuzz reaches open streams, trailers, flow control and answers.
client_streams = st.sampled_from((1, 3, 5, 7, 9, 11))
paths = st.sampled_from((f"{SERVICE}/ServerLive", f"{SERVICE}/ModelInfer", f"{SERVICE}/ModelStreamInfer", "/x"))
well_formed = st.one_of(
    st.builds(  # a whole call: headers, then a message that may end the stream
        lambda sid, path, body, end: (
            frame(HEADERS, END_HEADERS, sid, request_block(path))
            + frame(DATA, END_STREAM if end else 0, sid, grpc_message(body))
        ),
        client_streams,
        paths,
        st.binary(max_size=40),
        st.booleans(),
    ),
    st.builds(
        lambda sid, flags, path: frame(HEADERS, flags | END_HEADERS, sid, request_block(path)),
        client_streams,
        st.sampled_from((0, END_STREAM)),
        paths,
    ),
    st.builds(  # a call reset by the client: the server cancels it
        lambda sid, path: (
            frame(HEADERS, END_HEADERS, sid, request_block(path)) + frame(RST_STREAM, 0, sid, b"\x00\x00\x00\x08")
        ),
        client_streams,
        paths,
    ),
    st.builds(lambda sid, n: frame(WINDOW_UPDATE, 0, sid, n.to_bytes(4, "big")), stream_ids, st.integers(0, 2**32 - 1)),
    st.builds(
        lambda pairs: frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs)),
        st.lists(st.tuples(st.integers(0, 8), st.integers(0, 2**32 - 1)), max_size=3),
    ),
)
frame_sequences = st.lists(st.one_of(well_formed, well_formed, random_frames), min_size=1, max_size=12)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=frame_sequences)
async def test_fuzzed_frames_never_break_the_server(
    port: int, caplog: pytest.LogCaptureFixture, frames: list[bytes]
) -> None:
    caplog.clear()
    peer = await Peer.open(port)
    try:
        await peer.send(b"".join(frames) + frame(PING, 0, 0, b"fuzzdone"))
        # The connection either still answers (the PING comes back) or ends with a GOAWAY, never silently.
        while True:
            got = await peer.read()
            assert got is not None, "connection closed without a GOAWAY"
            if got[0] == PING and got[1] & ACK and got[3] == b"fuzzdone":
                break
            if got[0] == GOAWAY:
                code, debug = goaway(got)
                assert code != INTERNAL_ERROR, f"server bug: GOAWAY INTERNAL_ERROR {debug!r}"
                assert await peer.read() is None, "connection still open after GOAWAY"
                break
    finally:
        await peer.close()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors
    assert await server_live(port)
