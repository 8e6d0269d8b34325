"""The native gRPC transport: gRPC over this plugin's own HTTP/2 connection (:mod:`._h2`), on the event loop.

grpc.aio runs every call through grpc-core's C state machines, a completion queue and several loop callbacks:
on a small ModelInfer that machinery costs more CPU than decoding, running and encoding the inference
(measured: ~300 µs of server CPU per call against ~60 µs for the HTTP frontend's fast path). This transport
speaks the gRPC wire protocol (length-prefixed messages on HTTP/2 streams, status in trailers) directly:

* handlers are the same grpc method handlers the grpc.aio server runs (``grpc.GenericRpcHandler`` s and
  registered method handlers: the servicer, health and reflection are unchanged), called with a
  :class:`NativeContext` that offers the ``grpc.aio.ServicerContext`` methods they use;
* an *eager* unary method (ModelInfer) is a plain function that answers on the spot when the data plane can
  (:meth:`tritium.InferenceService.infer_nowait`), so a small inference costs no task at all; otherwise it
  returns an awaitable, finished in a task;
* deadlines (``grpc-timeout``), cancellation (RST_STREAM), message compression both ways (gzip, deflate;
  decompressed size bounded by the message limit), metadata (``-bin`` values base64-decoded), the
  ``--grpc-max-message-size`` limit, keepalive pings and the ping-abuse policy, maximum connection age, TLS
  and mutual TLS (ALPN ``h2``), and graceful shutdown (GOAWAY, then the calls in flight finish).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import re
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc

from tritium import Completion
from tritium_frontend_grpc import _h2
from tritium_frontend_grpc._h2 import H2Protocol, H2Stream
from tritium_frontend_grpc._hpack import encode_literal
from tritium_frontend_grpc._options import GrpcSettings

_log = logging.getLogger("tritium.frontend.grpc")

EagerMethod = Callable[[Any, "NativeContext"], Any]
"""A unary method answered on the spot: returns the response message, or an awaitable of it."""

_ENCODINGS = {grpc.Compression.Gzip: "gzip", grpc.Compression.Deflate: "deflate"}
_ACCEPT_ENCODING = "identity,deflate,gzip"
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_RESERVED = frozenset(("te", "content-type", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"))
_QUEUED_MESSAGES_CREDITED = 64
"""Stream messages the handler has not taken yet beyond which the client's window is no longer reopened."""
_MAX_DETAILS = 4096
HANDSHAKE_TIMEOUT_SECONDS = 120.0
"""How long a new connection may take to send the HTTP/2 preface and SETTINGS (gRPC core's default server
handshake timeout); idle sockets that never start cannot pile up."""

_STATUS_200 = b"\x88"  # indexed :status 200
_CONTENT_TYPE = encode_literal("content-type", "application/grpc")
RESPONSE_HEADERS = _STATUS_200 + _CONTENT_TYPE + encode_literal("grpc-accept-encoding", _ACCEPT_ENCODING)
OK_TRAILERS = encode_literal("grpc-status", "0")


def _percent_encode(text: str) -> str:
    """grpc-message encoding: UTF-8, bytes outside printable ASCII and ``%`` as %XX."""
    raw = text.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in raw)


def status_block(code: grpc.StatusCode, details: str, headers_sent: bool) -> bytes:
    """Trailers carrying ``code`` and ``details`` (a trailers-only response when no headers went out)."""
    block = b"" if headers_sent else _STATUS_200 + _CONTENT_TYPE
    block += encode_literal("grpc-status", str(code.value[0]))
    if details:
        block += encode_literal("grpc-message", _percent_encode(details[:_MAX_DETAILS]))
    return block


def parse_timeout(value: str) -> float | None:
    """Seconds of a ``grpc-timeout`` header value, None when malformed."""
    match = _TIMEOUT.match(value)
    if match is None:
        return None
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def _metadata_value(key: str, value: str) -> Any:
    if not key.endswith("-bin"):
        return value
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return value.encode("latin-1")


_STREAMED = object()
"""What a streaming call's run returns once its responses went out (the trailers end it)."""


class _Aborted(Exception):
    """Raised by :meth:`NativeContext.abort`: the call ends with the context's status."""


class _CallDetails:
    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, metadata: tuple[tuple[str, Any], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class NativeContext:
    """What a grpc.aio handler gets as its context: metadata, status, compression, writes."""

    __slots__ = ("_call", "_metadata", "_trailing", "compression", "status_code", "status_details")

    def __init__(self, call: GrpcCall, metadata: tuple[tuple[str, Any], ...]) -> None:
        self._call = call
        self._metadata = metadata
        self.status_code: grpc.StatusCode | None = None
        self.status_details = ""
        self.compression: grpc.Compression | None = None
        self._trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self.status_code = code
        self.status_details = details
        raise _Aborted()

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status_code = code

    def set_details(self, details: str) -> None:
        self.status_details = details

    def code(self) -> grpc.StatusCode | None:
        return self.status_code

    def details(self) -> str:
        return self.status_details

    def set_compression(self, compression: grpc.Compression) -> None:
        self.compression = compression

    def set_trailing_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        self._trailing = tuple(metadata)

    def disable_next_message_compression(self) -> None:
        pass

    async def send_initial_metadata(self, metadata: Any = ()) -> None:
        self._call.send_response_headers()

    async def write(self, message: Any) -> None:
        await self._call.write(message)

    def peer(self) -> str:
        return self._call.connection.peer

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def cancelled(self) -> bool:
        return self._call.cancelled

    def done(self) -> bool:
        return self._call.finished

    def auth_context(self) -> dict[str, Any]:
        return {}


class GrpcCall:
    """One RPC on one stream: reads its request messages, runs the handler, writes the answer."""

    __slots__ = (
        "_accepts",
        "_body",
        "_deadline",
        "_decompress",
        "_headers_sent",
        "_messages",
        "_owed",
        "_remote_done",
        "_streaming",
        "_waiter",
        "cancelled",
        "connection",
        "context",
        "eager",
        "finished",
        "handler",
        "path",
        "stream",
        "task",
    )

    def __init__(
        self,
        connection: GrpcConnection,
        stream: H2Stream,
        path: str,
        handler: Any,
        eager: EagerMethod | None,
        metadata: tuple[tuple[str, Any], ...],
    ) -> None:
        self.connection = connection
        self.stream = stream
        self.path = path
        self.handler = handler
        self.eager = eager
        self.context = NativeContext(self, metadata)
        self._body = bytearray()
        self._messages: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._remote_done = False
        self._owed = 0
        self.task: asyncio.Future[Any] | None = None  # the handler's task, or an eager method's Completion
        self._deadline: asyncio.TimerHandle | None = None
        self._decompress: str | None = None
        self._accepts: frozenset[str] = frozenset()
        self.cancelled = False
        self.finished = False
        self._headers_sent = False
        self._streaming = handler is not None and handler.request_streaming

    # ---------------------------------------------------------------------------------- requests
    def start(self, timeout: float | None, encoding: str | None, accepts: frozenset[str]) -> None:
        self._decompress = encoding
        self._accepts = accepts
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._deadline_exceeded)

    def feed(self, data: bytes, end: bool) -> None:
        """Request bytes: split into messages; a unary call runs once the client finished sending."""
        if self.finished:
            self.connection.credit(self.stream, len(data))
            return
        body = self._body
        if data:
            if self._streaming and len(self._messages) > _QUEUED_MESSAGES_CREDITED:
                self._owed += len(data)  # the handler lags: the window reopens as it takes messages
            else:
                self.connection.credit(self.stream, len(data))
            if not body and len(data) >= 5 and data[0] == 0 and len(data) == 5 + int.from_bytes(data[1:5], "big"):
                limit = self.connection.max_message_size
                if len(data) - 5 > limit:
                    self._too_large(len(data) - 5)
                    return
                self._message(data[5:])  # the whole message in one frame: no copy through the buffer
            else:
                body += data
                self._split()
        if end:
            self._remote_done = True
            if self._streaming:
                self._start_streaming()
                self._wake()
            elif not self.finished:
                self._run_unary()

    def _split(self) -> None:
        body = self._body
        limit = self.connection.max_message_size
        while len(body) >= 5 and not self.finished:
            length = int.from_bytes(body[1:5], "big")
            if length > limit:
                self._too_large(length)
                return
            if len(body) < 5 + length:
                return
            compressed = body[0]
            payload = bytes(body[5 : 5 + length])
            del body[: 5 + length]
            self._message(payload, compressed)

    def _message(self, payload: bytes, compressed: int = 0) -> None:
        if not self._streaming and self._messages:
            # A unary call has one request message: ending it here also stops the window from reopening.
            self.finish(grpc.StatusCode.INTERNAL, "Received more than one request message on a unary call")
            return
        if compressed:
            decoded = self._inflate(payload)
            if decoded is None:
                return
            payload = decoded
        self._messages.append(payload)
        if self._streaming:
            self._start_streaming()
            self._wake()

    def _inflate(self, payload: bytes) -> bytes | None:
        encoding = self._decompress
        if encoding not in ("gzip", "deflate"):
            self.finish(
                grpc.StatusCode.INTERNAL,
                f"Compressed message received without a supported grpc-encoding ({encoding or 'none'})",
            )
            return None
        limit = self.connection.max_message_size
        try:
            inflater = zlib.decompressobj(47)  # zlib or gzip header
            data = inflater.decompress(payload, limit + 1)
        except zlib.error as exc:
            self.finish(grpc.StatusCode.INTERNAL, f"Failed to decompress the message: {exc}")
            return None
        if len(data) > limit:
            self._too_large(len(data))
            return None
        return data

    def _too_large(self, size: int) -> None:
        limit = self.connection.max_message_size
        self.finish(grpc.StatusCode.RESOURCE_EXHAUSTED, f"Received message larger than max ({size} vs. {limit})")

    def _start_streaming(self) -> None:
        """Run a streaming handler once the first request message (or the end of the requests) arrived.

        Not at the headers: a handler that ends the call before reading (a restricted protocol) would send
        its status while the client is still writing its first message, and grpc-core clients then report
        their failed write (INTERNAL) instead of the status."""
        if self.task is None and not self.finished:
            self.task = asyncio.get_running_loop().create_task(self._run_streaming())

    async def _requests(self) -> AsyncIterator[Any]:
        deserialize = self.handler.request_deserializer
        messages = self._messages
        while True:
            while messages:
                data = messages.popleft()
                if self._owed and len(messages) <= _QUEUED_MESSAGES_CREDITED:
                    owed, self._owed = self._owed, 0
                    self.connection.credit(self.stream, owed)
                yield deserialize(data) if deserialize is not None else data
            if self._remote_done or self.finished:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -------------------------------------------------------------------------------------- runs
    def _run_unary(self) -> None:
        messages = self._messages
        if len(messages) != 1:
            self.finish(grpc.StatusCode.INTERNAL, f"Expected one request message, received {len(messages)}")
            return
        handler = self.handler
        data = messages.popleft()
        try:
            request = handler.request_deserializer(data) if handler.request_deserializer is not None else data
            if self.eager is not None:
                result = self.eager(request, self.context)
                if type(result) is Completion:  # started at once: answered when it is settled, no task
                    self.task = result
                    result.when_settled(self._settled)
                    return
                if hasattr(result, "__await__"):
                    self.task = asyncio.get_running_loop().create_task(self._finish_later(result))
                    return
                self._answer(result)
                return
            coroutine = handler.unary_unary(request, self.context)
        except Exception as exc:
            self._failed(exc)
            return
        self.task = asyncio.get_running_loop().create_task(self._finish_later(coroutine))

    async def _finish_later(self, awaitable: Any) -> None:
        """Await the handler's result and end the call with it: its response (:meth:`_answer`), or the
        status of its abort, cancellation or failure."""
        try:
            result = await awaitable
        except _Aborted:
            self.finish(self.context.status_code or grpc.StatusCode.UNKNOWN, self.context.status_details)
            return
        except asyncio.CancelledError:
            if not self.finished:
                self.finish(grpc.StatusCode.CANCELLED, "Cancelled")
            raise
        except Exception as exc:
            self._failed(exc)
            return
        if result is _STREAMED:
            self.finish(self.context.status_code or grpc.StatusCode.OK, self.context.status_details)
        else:
            self._answer(result)

    def _settled(self, completion: Completion[Any]) -> None:
        """End the call with an eager method's settled completion, as :meth:`_finish_later` ends it."""
        if completion.cancelled():
            if not self.finished:
                self.finish(grpc.StatusCode.CANCELLED, "Cancelled")
            return
        error = completion.exception()
        if error is None:
            self._answer(completion.result())
        elif isinstance(error, _Aborted):
            self.finish(self.context.status_code or grpc.StatusCode.UNKNOWN, self.context.status_details)
        elif isinstance(error, Exception):
            self._failed(error)

    async def _run_streaming(self) -> None:
        await self._finish_later(self._stream_handler())

    async def _stream_handler(self) -> Any:
        """Run a handler that reads a request stream: the response of a stream-unary handler, or
        :data:`_STREAMED` once a response stream was written."""
        handler = self.handler
        if handler.response_streaming:
            result = handler.stream_stream(self._requests(), self.context)
        else:
            result = handler.stream_unary(self._requests(), self.context)
        if inspect.isasyncgen(result):
            async for response in result:
                await self.write(response)
            return _STREAMED
        response = await result
        return response if not handler.response_streaming and response is not None else _STREAMED

    def _failed(self, exc: Exception) -> None:
        _log.debug("gRPC handler of %s raised", self.path, exc_info=exc)
        self.finish(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")

    # ------------------------------------------------------------------------------------ answers
    def _encoding(self) -> str | None:
        compression = self.context.compression
        if compression is None:
            return None
        name = _ENCODINGS.get(compression)
        return name if name in self._accepts else None

    def send_response_headers(self) -> None:
        if self._headers_sent or self.finished:
            return
        self._headers_sent = True
        encoding = self._encoding()
        block = RESPONSE_HEADERS if encoding is None else RESPONSE_HEADERS + encode_literal("grpc-encoding", encoding)
        self.connection.send_headers(self.stream, block, False)

    def _frame(self, message: Any) -> bytes:
        payload = self.handler.response_serializer(message) if self.handler.response_serializer else message
        encoding = self._encoding() if self._headers_sent else None
        if encoding is not None:
            payload = _compress(payload, encoding)
            return b"\x01" + len(payload).to_bytes(4, "big") + payload
        return b"\x00" + len(payload).to_bytes(4, "big") + bytes(payload)

    def _answer(self, response: Any) -> None:
        """Finish a unary call: the response, unless the handler set an error status."""
        if self.finished:
            return
        code = self.context.status_code
        if code is not None and code is not grpc.StatusCode.OK:
            self.finish(code, self.context.status_details)
            return
        try:
            self.send_response_headers()
            data = self._frame(response)
        except Exception as exc:
            self._failed(exc)
            return
        self.connection.send_data(self.stream, data)
        self.finish(grpc.StatusCode.OK, self.context.status_details)

    async def write(self, message: Any) -> None:
        """One message of a response stream (waits while the client's window is full)."""
        if self.finished:
            raise asyncio.CancelledError()
        self.send_response_headers()
        self.connection.send_data(self.stream, self._frame(message))
        if self.stream.pending:
            await self.connection.drain(self.stream)

    def finish(self, code: grpc.StatusCode, details: str = "") -> None:
        """End the call with its status (trailers, or a trailers-only answer)."""
        if self.finished:
            return
        self.finished = True
        if self._deadline is not None:
            self._deadline.cancel()
        block = OK_TRAILERS if code is grpc.StatusCode.OK and not details and self._headers_sent else None
        if block is None:
            block = status_block(code, details, self._headers_sent)
        self.connection.send_headers(self.stream, block, True)
        self._wake()

    # ---------------------------------------------------------------------------------- endings
    def reset(self) -> None:
        """The client reset the stream (or the connection is gone): stop the handler."""
        self.cancelled = True
        self.finished = True
        if self._deadline is not None:
            self._deadline.cancel()
        self._wake()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _deadline_exceeded(self) -> None:
        self._deadline = None
        if self.finished:
            return
        self.finish(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        self.cancelled = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline.when() - asyncio.get_running_loop().time())


def _compress(payload: bytes, encoding: str) -> bytes:
    compressor = zlib.compressobj(wbits=31) if encoding == "gzip" else zlib.compressobj()
    return compressor.compress(payload) + compressor.flush()


class GrpcConnection(H2Protocol):
    """One client connection of the native transport."""

    def __init__(self, server: NativeServer) -> None:
        super().__init__()
        self.server = server
        self.settings = server.settings
        self.max_message_size = server.settings.max_message_size
        self.peer = ""
        self._timers: list[asyncio.TimerHandle] = []
        self._ping_due: asyncio.TimerHandle | None = None
        self._last_ping_received: float | None = None
        self._ping_strikes = 0
        self._pings_without_data = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            family = "ipv6" if ":" in str(peer[0]) else "ipv4"
            host = f"[{peer[0]}]" if family == "ipv6" else peer[0]
            self.peer = f"{family}:{host}:{peer[1]}"
        super().connection_made(transport)
        self.server.connections.add(self)
        loop = asyncio.get_running_loop()
        settings = self.settings
        if 0 < settings.keepalive_time_ms < 2**31 - 1:
            self._timers.append(loop.call_later(settings.keepalive_time_ms / 1000, self._keepalive))
        if settings.max_connection_age_ms > 0:
            self._timers.append(loop.call_later(settings.max_connection_age_ms / 1000, self._too_old))
        self._timers.append(loop.call_later(HANDSHAKE_TIMEOUT_SECONDS, self._handshake_expired))
        if self.server.stopping:
            self.send_goaway()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._ping_due is not None:
            self._ping_due.cancel()
        self.server.connections.discard(self)
        super().connection_lost(exc)
        self.server.connection_closed()

    # ------------------------------------------------------------------------------------ streams
    def stream_started(self, stream: H2Stream, headers: list[tuple[str, str]], fits: bool, end: bool) -> None:
        self._ping_strikes = 0
        path = ""
        method = ""
        content_type = ""
        timeout: float | None = None
        encoding: str | None = None
        accepts: frozenset[str] = frozenset()
        metadata: list[tuple[str, Any]] = []
        for name, value in headers:
            if name[:1] == ":":
                if name == ":path":
                    path = value
                elif name == ":method":
                    method = value
            elif name in _RESERVED:
                if name == "content-type":
                    content_type = value
                elif name == "grpc-timeout":
                    timeout = parse_timeout(value)
                elif name == "grpc-encoding":
                    encoding = None if value == "identity" else value
                elif name == "grpc-accept-encoding":
                    accepts = frozenset(part.strip() for part in value.split(","))
            else:
                metadata.append((name, _metadata_value(name, value)))
        server = self.server
        handler = server.lookup(path) if fits else None
        call = GrpcCall(self, stream, path, handler, server.eager.get(path), tuple(metadata))
        stream.app = call
        if not fits:
            call.finish(grpc.StatusCode.RESOURCE_EXHAUSTED, "request metadata too large")
        elif method != "POST" or not content_type.startswith("application/grpc"):
            call.finish(grpc.StatusCode.INTERNAL, "not a gRPC request (POST with content-type application/grpc)")
        elif handler is None:
            call.finish(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        else:
            call.start(timeout, encoding, accepts)
        if end:
            call.feed(b"", True)

    def stream_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        self._ping_strikes = 0
        stream.app.feed(data, end)

    def stream_reset(self, stream: H2Stream) -> None:
        if stream.app is not None:
            stream.app.reset()

    def connection_idle(self) -> None:
        if self.server.stopping or self._goaway_sent:
            self.close()

    def _handshake_expired(self) -> None:
        """A connection that has not sent the HTTP/2 preface and SETTINGS by now never will: close it."""
        if not self.handshake_done:
            self.close()

    # ------------------------------------------------------------------------- keepalive and age
    def _keepalive(self) -> None:
        """Send a keepalive PING; no answer within --grpc-keepalive-timeout closes the connection."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        self._timers = [timer for timer in self._timers if not timer.cancelled()]
        if self.closed:
            return
        if self.streams or settings.keepalive_permit_without_calls:
            limit = settings.http2_max_pings_without_data
            if not limit or self._pings_without_data < limit or self.streams:
                self._pings_without_data += 1
                self._write(_h2.frame(_h2.PING, 0, 0, b"tritium\x00"))
                if self._ping_due is None:
                    self._ping_due = loop.call_later(settings.keepalive_timeout_ms / 1000, self.close)
        self._timers.append(loop.call_later(settings.keepalive_time_ms / 1000, self._keepalive))

    def ping_acked(self, payload: bytes) -> None:
        if self._ping_due is not None:
            self._ping_due.cancel()
            self._ping_due = None

    def ping_received(self) -> None:
        """grpc-core's ping-abuse policy: pings closer together than allowed are strikes; too many close the
        connection with ENHANCE_YOUR_CALM ("too_many_pings")."""
        settings = self.settings
        now = asyncio.get_running_loop().time()
        last, self._last_ping_received = self._last_ping_received, now
        if last is None:
            return
        idle = not self.streams and not settings.keepalive_permit_without_calls
        interval = 7200.0 if idle else settings.http2_min_recv_ping_interval_without_data_ms / 1000
        if now - last < interval:
            self._ping_strikes += 1
            if settings.http2_max_ping_strikes and self._ping_strikes > settings.http2_max_ping_strikes:
                self.close_with_error(_h2.ENHANCE_YOUR_CALM, "too_many_pings")

    def send_headers(self, stream: H2Stream, block: bytes, end: bool) -> None:
        self._pings_without_data = 0
        self._ping_strikes = 0  # as gRPC core: the server sending headers or data forgives the client's pings
        super().send_headers(stream, block, end)

    def _too_old(self) -> None:
        """--grpc-max-connection-age: no new calls on this connection; the grace period ends the rest."""
        self.send_goaway()
        if not self.streams:
            self.close()
            return
        grace = self.settings.max_connection_age_grace_ms
        if grace > 0:
            self._timers.append(asyncio.get_running_loop().call_later(grace / 1000, self.close))


class NativeServer:
    """Serves gRPC handlers on one listening socket with the native transport (the part of
    ``grpc.aio.Server`` the frontend, health and reflection use)."""

    def __init__(self, settings: GrpcSettings) -> None:
        self.settings = settings
        self.connections: set[GrpcConnection] = set()
        self.eager: dict[str, EagerMethod] = {}
        self.stopping = False
        self._generic: list[Any] = []
        self._methods: dict[str, Any] = {}
        self._server: asyncio.AbstractServer | None = None
        self._idle: asyncio.Event | None = None

    # ------------------------------------------------------------------------------ registration
    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        for name, handler in handlers.items():
            self._methods[f"/{service}/{name}"] = handler

    def add_eager_unary(self, path: str, method: EagerMethod) -> None:
        """Answer ``path`` with ``method`` (its generic handler still provides the (de)serializers)."""
        self.eager[path] = method

    def lookup(self, path: str) -> Any:
        """The method handler of ``path``, None for an unknown method."""
        handler = self._methods.get(path)
        if handler is not None:
            return handler
        details = _CallDetails(path, ())
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                self._methods[path] = handler  # known paths only: a client cannot grow this table
                return handler
        return None

    # -------------------------------------------------------------------------------- lifecycle
    async def start(self, sock: socket.socket, ssl_context: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: GrpcConnection(self), sock=sock, ssl=ssl_context, backlog=1024
        )

    def connection_closed(self) -> None:
        if self._idle is not None and not self.connections:
            self._idle.set()

    async def stop(self, grace: float) -> None:
        """Stop accepting, let calls in flight finish for up to ``grace`` seconds, then cancel the rest."""
        self.stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._idle = asyncio.Event()
        for connection in list(self.connections):
            connection.send_goaway()
            if not connection.streams:
                connection.close()
            else:
                connection._flush()
        if self.connections:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                pass
        for connection in list(self.connections):
            connection.close()
        if server is not None:
            await server.wait_closed()


def listening_socket(address: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound TCP socket for ``address:port`` (SO_REUSEPORT with ``reuse_port``)."""
    host = address.strip("[]")
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def tls_context(settings: GrpcSettings) -> ssl.SSLContext:
    """The server's TLS context: its certificate, ALPN ``h2``, client certificates required for mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.server_cert, settings.server_key)
    context.set_alpn_protocols(["h2"])
    if settings.use_ssl_mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=settings.root_cert)
    return context

