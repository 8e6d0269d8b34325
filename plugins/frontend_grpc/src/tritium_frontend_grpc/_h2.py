"""The server side of one HTTP/2 connection (RFC 9113), as an asyncio protocol, for the native gRPC transport.

It does framing, HPACK, stream states, both directions of flow control, SETTINGS, PING, GOAWAY and
RST_STREAM, and hands requests up through three hooks that a subclass implements (:meth:`stream_started`,
:meth:`stream_data`, :meth:`stream_reset`); answers go down through :meth:`send_headers`,
:meth:`send_data` and :meth:`reset_stream`. Everything the peer controls is bounded: frame sizes (what the
server advertised), header blocks (with their CONTINUATION frames), concurrent streams, and received data
(the flow-control windows the server grants). Protocol violations end the connection with GOAWAY and the
RFC's error code; nothing a client sends raises out of :meth:`data_received`.

Writes made while a read is processed go out together when it ends (one ``send`` for all the answers of a
burst of requests); writes from elsewhere (a task finishing a request) go out at once.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from typing import Any

from tritium_frontend_grpc._hpack import TABLE_SIZE_ZERO, HpackDecoder, HpackError

_log = logging.getLogger("tritium.frontend.grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 5, 6, 7, 8, 9
ENHANCE_YOUR_CALM = 0xB

SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_ENABLE_PUSH = 2
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_FRAME_SIZE = 5
SETTINGS_MAX_HEADER_LIST_SIZE = 6

DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
DEFAULT_FRAME_SIZE = 16384
MAX_FRAME_SIZE_LIMIT = 2**24 - 1

RECEIVE_FRAME_SIZE = 1 << 20
"""Largest frame the server accepts (advertised): large tensors arrive in few frames."""
STREAM_WINDOW = 8 << 20
"""Receive window of each stream (advertised as SETTINGS_INITIAL_WINDOW_SIZE)."""
CONNECTION_WINDOW = 64 << 20
"""Receive window of the connection (raised from 65535 by the first WINDOW_UPDATE)."""
MAX_CONCURRENT_STREAMS = 4096
"""Streams a client may have open at once; more are refused (REFUSED_STREAM), as the RFC allows."""
MAX_HEADER_BLOCK = 64 * 1024
"""Largest header block (HEADERS plus CONTINUATION frames) read before the connection is refused."""
MAX_HEADER_LIST_SIZE = 16 * 1024
"""Largest decoded header list (RFC 7541 sizes) a stream may carry; larger ones are answered with an error."""

_FRAME_HEADER = struct.Struct(">I")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: the 9-byte header and its payload."""
    return frame_header(len(payload), kind, flags, stream_id) + payload


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header of a frame carrying ``length`` bytes."""
    return length.to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big")


class ConnectionError_(Exception):
    """A connection error: the connection ends with GOAWAY ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class H2Stream:
    """The transport state of one stream; ``app`` is the layer above's object for it."""

    __slots__ = (
        "app",
        "drained",
        "id",
        "local_closed",
        "pending",
        "recv_credit",
        "recv_window",
        "remote_closed",
        "send_window",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.recv_window = STREAM_WINDOW
        self.recv_credit = 0
        self.pending: deque[tuple[int, Any, bool]] = deque()  # (kind, payload, end_stream) held by flow control
        self.remote_closed = False
        self.local_closed = False
        self.drained: asyncio.Future[None] | None = None
        self.app: Any = None


class H2Protocol(asyncio.Protocol):
    """An HTTP/2 server connection; subclasses serve its streams."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        self._buffer = bytearray()
        self._preface_seen = False
        self._settings_seen = False
        self._decoder = HpackDecoder(max_list_size=MAX_HEADER_LIST_SIZE)
        self._continuation: tuple[int, int, bytearray] | None = None
        self._last_stream_id = 0
        self._goaway_sent = False
        self._peer_goaway = False
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_FRAME_SIZE
        self._recv_unacked = 0
        self._out: list[bytes] = []
        self._reading = False
        self._flush_scheduled = False
        self._first_block = True

    @property
    def handshake_done(self) -> bool:
        """Whether the client sent the connection preface and its first SETTINGS."""
        return self._settings_seen

    # ------------------------------------------------------------------------------- hooks (override)
    def stream_started(self, stream: H2Stream, headers: list[tuple[str, str]], fits: bool, end: bool) -> None:
        """A request's headers arrived (``fits``: within :data:`MAX_HEADER_LIST_SIZE`)."""
        raise NotImplementedError

    def stream_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        """Request body bytes arrived (``end``: the client finished sending). The layer above returns the
        window with :meth:`credit` as it consumes them."""
        raise NotImplementedError

    def stream_reset(self, stream: H2Stream) -> None:
        """The client reset the stream, or the connection is gone while it was open."""
        raise NotImplementedError

    def connection_idle(self) -> None:
        """The last open stream closed (a graceful shutdown may now close the connection)."""

    # ---------------------------------------------------------------------------------- asyncio API
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        settings = b"".join(
            struct.pack(">HI", key, value)
            for key, value in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
                (SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (SETTINGS_MAX_FRAME_SIZE, RECEIVE_FRAME_SIZE),
                (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE),
            )
        )
        self._write(
            frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, _FRAME_HEADER.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            self._wake(stream)
            self.stream_reset(stream)

    def pause_writing(self) -> None:
        """The peer does not read: stop reading its requests until it catches up."""
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._reading = True
        try:
            self._receive(data)
        except ConnectionError_ as exc:
            self.close_with_error(exc.code, str(exc))
        except Exception:  # a bug must not leave the connection half-parsed
            _log.exception("HTTP/2 connection error")
            self.close_with_error(INTERNAL_ERROR, "internal error")
        finally:
            self._reading = False
            self._flush()

    # ------------------------------------------------------------------------------------ parsing
    def _receive(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer:
            buffer += data
            if self._preface_seen and len(buffer) >= 9:
                length = int.from_bytes(buffer[:3], "big")
                if length <= RECEIVE_FRAME_SIZE and len(buffer) < 9 + length:
                    return  # a large frame still arriving: no copy until it is whole
            data = bytes(buffer)
            buffer.clear()
        pos = 0
        if not self._preface_seen:
            if len(data) < len(PREFACE):
                if not PREFACE.startswith(data):
                    raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                buffer += data
                return
            if not data.startswith(PREFACE):
                raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface_seen = True
            pos = len(PREFACE)
        end = len(data)
        while end - pos >= 9 and not self.closed:
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length > RECEIVE_FRAME_SIZE:
                raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if end - pos - 9 < length:
                break
            kind = data[pos + 3]
            flags = data[pos + 4]
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            self._frame(kind, flags, stream_id, payload)
        if pos < end and not self.closed:
            buffer += data[pos:]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if not self._settings_seen:
            if kind != SETTINGS or flags & ACK:
                raise ConnectionError_(PROTOCOL_ERROR, "the connection preface must be followed by SETTINGS")
            self._settings_seen = True
        if self._continuation is not None and kind != CONTINUATION:
            raise ConnectionError_(PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == PING:
            self._on_ping(flags, stream_id, payload)
        elif kind == RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif kind == GOAWAY:
            if stream_id:
                raise ConnectionError_(PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise ConnectionError_(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            # The client is going away: its streams finish, then the connection ends with our own GOAWAY.
            self._peer_goaway = True
            self._check_idle()
        elif kind == PRIORITY:
            if stream_id == 0 or len(payload) != 5:
                raise ConnectionError_(PROTOCOL_ERROR, "bad PRIORITY frame")
        elif kind == PUSH_PROMISE:
            raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # unknown frame types are ignored (RFC 9113 4.1)

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload:
            raise ConnectionError_(PROTOCOL_ERROR, "padded frame without a pad length")
        pad = payload[0]
        if pad >= len(payload):
            raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - pad]

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._recv_unacked += size
        if self._recv_unacked > CONNECTION_WINDOW:
            raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window exceeded")
        if self._recv_unacked >= CONNECTION_WINDOW // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, _FRAME_HEADER.pack(self._recv_unacked)))
            self._recv_unacked = 0
        data = self._unpad(flags, payload)
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self._last_stream_id:
                raise ConnectionError_(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream the server already finished (or reset): dropped, window counted above
        stream.recv_window -= size
        if stream.recv_window < 0:
            self.reset_stream(stream, FLOW_CONTROL_ERROR)
            return
        if size != len(data):
            self.credit(stream, size - len(data))  # padding is nobody's to consume
        end = bool(flags & END_STREAM)
        if end:
            stream.remote_closed = True
        self.stream_data(stream, data, end)
        if end:
            self._maybe_close(stream)

    def credit(self, stream: H2Stream, size: int) -> None:
        """The layer above consumed ``size`` bytes of the stream's data: let the client send that much more
        (in WINDOW_UPDATEs of at least half the window, so that a stream costs few of them)."""
        stream.recv_credit += size
        if stream.recv_credit >= STREAM_WINDOW // 2 and not stream.remote_closed:
            self._write(frame(WINDOW_UPDATE, 0, stream.id, _FRAME_HEADER.pack(stream.recv_credit)))
            stream.recv_window += stream.recv_credit
            stream.recv_credit = 0

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(fragment) < 5:
                raise ConnectionError_(PROTOCOL_ERROR, "HEADERS priority truncated")
            fragment = fragment[5:]
        if not flags & END_HEADERS:
            self._continuation = (stream_id, flags, bytearray(fragment))
            return
        self._headers_complete(stream_id, flags, fragment)

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        pending = self._continuation
        if pending is None or pending[0] != stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, "unexpected CONTINUATION")
        block = pending[2]
        block += payload
        if len(block) > MAX_HEADER_BLOCK:
            raise ConnectionError_(ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self._continuation = None
            self._headers_complete(stream_id, pending[1], bytes(block))

    def _headers_complete(self, stream_id: int, flags: int, block: bytes) -> None:
        try:
            headers, fits = self._decoder.decode(block)
        except HpackError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, str(exc)) from None
        end = bool(flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if not end:
                raise ConnectionError_(PROTOCOL_ERROR, "second HEADERS without END_STREAM")
            if not stream.remote_closed:
                stream.remote_closed = True
                self.stream_data(stream, b"", True)
                self._maybe_close(stream)
            return
        if stream_id % 2 == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "even stream id from a client")
        if stream_id <= self._last_stream_id:
            return  # HEADERS (trailers) of a stream the server already closed: decoded above, dropped
        self._last_stream_id = stream_id
        if self._goaway_sent:
            self._write(frame(RST_STREAM, 0, stream_id, _FRAME_HEADER.pack(REFUSED_STREAM)))
            return
        if len(self.streams) >= MAX_CONCURRENT_STREAMS:
            self._write(frame(RST_STREAM, 0, stream_id, _FRAME_HEADER.pack(REFUSED_STREAM)))
            return
        stream = H2Stream(stream_id, self._peer_initial_window)
        stream.remote_closed = end
        self.streams[stream_id] = stream
        self.stream_started(stream, headers, fits, end)
        if end:
            self._maybe_close(stream)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise ConnectionError_(PROTOCOL_ERROR, "invalid SETTINGS_MAX_FRAME_SIZE")
                self._peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise ConnectionError_(PROTOCOL_ERROR, "invalid SETTINGS_ENABLE_PUSH")
        self._write(frame(SETTINGS, ACK, 0))
        self._flush_pending()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE length")
        increment = _FRAME_HEADER.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._flush_pending()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if increment == 0:
            self.reset_stream(stream, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self.reset_stream(stream, FLOW_CONTROL_ERROR)
            return
        self._flush_stream(stream)

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(FRAME_SIZE_ERROR, "PING length")
        if flags & ACK:
            self.ping_acked(payload)
            return
        self.ping_received()
        if not self.closed:
            self._write(frame(PING, ACK, 0, payload))

    def ping_received(self) -> None:
        """A client PING (keepalive policing hooks in here)."""

    def ping_acked(self, payload: bytes) -> None:
        """The client answered a PING of the server."""

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "RST_STREAM length")
        if stream_id > self._last_stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.remote_closed = stream.local_closed = True
            self._wake(stream)
            self.stream_reset(stream)
            self._check_idle()

    # ------------------------------------------------------------------------------------ sending
    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self._out.append(data)
        if not self._reading and not self._flush_scheduled:
            # Everything written in this loop iteration (answers finished by several tasks) goes out together.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not self.closed:
            self.transport.write(data)

    def header_block(self, block: bytes) -> bytes:
        """``block`` with the table size update the connection's first block carries."""
        if self._first_block:
            self._first_block = False
            return TABLE_SIZE_ZERO + block
        return block

    def send_headers(self, stream: H2Stream, block: bytes, end: bool) -> None:
        """A HEADERS frame (response headers, or trailers with ``end``), after any data held back."""
        if stream.local_closed:
            return
        if stream.pending:
            stream.pending.append((HEADERS, block, end))
            return
        self._write_headers(stream, block, end)

    def _write_headers(self, stream: H2Stream, block: bytes, end: bool) -> None:
        block = self.header_block(block)
        limit = self._peer_max_frame
        flags = END_STREAM if end else 0
        if len(block) <= limit:
            self._write(frame_header(len(block), HEADERS, flags | END_HEADERS, stream.id) + block)
        else:
            chunks = [block[i : i + limit] for i in range(0, len(block), limit)]
            parts = [frame(HEADERS, flags, stream.id, chunks[0])]
            for index, chunk in enumerate(chunks[1:], 1):
                last = index == len(chunks) - 1
                parts.append(frame(CONTINUATION, END_HEADERS if last else 0, stream.id, chunk))
            self._write(b"".join(parts))
        if end:
            self._end_local(stream)

    def send_data(self, stream: H2Stream, data: Any, end: bool = False) -> None:
        """DATA (``data`` is bytes-like), within the flow-control windows; the rest is held until the client
        opens them (see :meth:`drain`)."""
        if stream.local_closed:
            return
        size = len(data)
        if (
            not stream.pending
            and size <= stream.send_window
            and size <= self._send_window
            and size <= self._peer_max_frame
        ):
            stream.send_window -= size
            self._send_window -= size
            self._write(frame_header(size, DATA, END_STREAM if end else 0, stream.id) + bytes(data))
            if end:
                self._end_local(stream)
            return
        stream.pending.append((DATA, memoryview(data).cast("B") if size else b"", end))
        self._flush_stream(stream)

    def _flush_stream(self, stream: H2Stream) -> None:
        pending = stream.pending
        while pending and not stream.local_closed:
            kind, payload, end = pending[0]
            if kind == HEADERS:
                pending.popleft()
                self._write_headers(stream, payload, end)
                continue
            size = len(payload)
            room = min(stream.send_window, self._send_window, self._peer_max_frame)
            if size and room <= 0:
                break
            chunk = payload[:room] if size > room else payload
            last = len(chunk) == size
            stream.send_window -= len(chunk)
            self._send_window -= len(chunk)
            flags = END_STREAM if (end and last) else 0
            self._write(frame_header(len(chunk), DATA, flags, stream.id) + bytes(chunk))
            if last:
                pending.popleft()
                if end:
                    self._end_local(stream)
            else:
                pending[0] = (DATA, payload[len(chunk) :], end)
        if not pending:
            self._wake(stream)

    def _flush_pending(self) -> None:
        for stream in list(self.streams.values()):
            if stream.pending:
                self._flush_stream(stream)

    async def drain(self, stream: H2Stream) -> None:
        """Wait until the stream's held data is sent (or the stream is gone)."""
        while stream.pending and not stream.local_closed and not self.closed:
            if stream.drained is None:
                stream.drained = asyncio.get_running_loop().create_future()
            await stream.drained

    @staticmethod
    def _wake(stream: H2Stream) -> None:
        waiter = stream.drained
        if waiter is not None:
            stream.drained = None
            if not waiter.done():
                waiter.set_result(None)

    def reset_stream(self, stream: H2Stream, code: int) -> None:
        """End the stream now with RST_STREAM ``code`` (the client stops sending on it)."""
        self._write(frame(RST_STREAM, 0, stream.id, _FRAME_HEADER.pack(code)))
        stream.local_closed = stream.remote_closed = True
        stream.pending.clear()
        self._wake(stream)
        if self.streams.pop(stream.id, None) is not None:
            self.stream_reset(stream)
            self._check_idle()

    def _end_local(self, stream: H2Stream) -> None:
        stream.local_closed = True
        if not stream.remote_closed:
            # The answer is complete before the request: tell the client to stop sending (gRPC does so).
            self._write(frame(RST_STREAM, 0, stream.id, _FRAME_HEADER.pack(NO_ERROR)))
            stream.remote_closed = True
        self._maybe_close(stream)

    def _maybe_close(self, stream: H2Stream) -> None:
        if stream.local_closed and stream.remote_closed and self.streams.pop(stream.id, None) is not None:
            self._check_idle()

    def _check_idle(self) -> None:
        if self.streams:
            return
        if self._peer_goaway:
            self.send_goaway()
            self.close()
        else:
            self.connection_idle()

    # ---------------------------------------------------------------------------------- shutdown
    def send_goaway(self, code: int = NO_ERROR, message: str = "") -> None:
        """Tell the client no new stream will be served (streams up to the last one seen still are)."""
        if self._goaway_sent and code == NO_ERROR:
            return
        self._goaway_sent = True
        self._write(
            frame(GOAWAY, 0, 0, struct.pack(">II", self._last_stream_id, code) + message.encode()[:256])
        )

    def close_with_error(self, code: int, message: str) -> None:
        """End the connection after a protocol error (GOAWAY with ``code``)."""
        if self.closed:
            return
        self._goaway_sent = False
        self.send_goaway(code, message)
        self._flush()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
