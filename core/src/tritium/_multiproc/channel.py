"""The control channel between a worker and the executor: framed batches of small messages on a Unix socket.

A frame is an 8-byte little-endian length and a pickled *list* of messages (tuples of plain values; tensors
never travel in them, see :mod:`tritium._multiproc.wire`). Under load, messages sent during one event loop
iteration (or while handling one received frame) go out as one frame in one write, so many requests and
responses share a system call; a lone message on a quiet channel goes out at once. Both ends are
processes of the same server, started by its supervisor, connected through a socket in a directory only the
server's user can enter; nothing from a client is ever unpickled.

:class:`Channel` is the asyncio end; :class:`BlockingChannel` is a synchronous request/answer connection used
for the service's synchronous calls (statistics, settings), which are rare and must answer in place.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
from collections.abc import Callable
from typing import Any

from tritium._multiproc.busy_poll import BusyPoll

_LENGTH_BYTES = 8
MAX_FRAME = 1 << 40
IDLE_AFTER_S = 0.0005
"""A message sent this long after the last write goes out at once; sooner, it waits for the end of the loop
iteration to leave with the others (one write for a burst)."""


def frame(messages: Any) -> bytes:
    payload = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(_LENGTH_BYTES, "little") + payload


class Channel(asyncio.Protocol):
    """One end of a connection: :meth:`send` queues a message; ``on_messages`` gets each received batch.
    ``busy_poll`` is told of every frame read and written (the loop then polls a moment for what comes
    next, see :class:`BusyPoll`)."""

    def __init__(
        self,
        on_messages: Callable[[list[Any]], None],
        on_lost: Callable[[BaseException | None], None],
        busy_poll: BusyPoll | None = None,
    ) -> None:
        self._on_messages = on_messages
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._outbox: list[Any] = []
        self._flush_scheduled = False
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receiving = False
        self._last_write = 0.0
        self._busy_poll = busy_poll

    # ----------------------------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
                except OSError:
                    pass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        end = len(buffer)
        batches: list[list[Any]] = []
        while end - start >= _LENGTH_BYTES:
            length = int.from_bytes(buffer[start : start + _LENGTH_BYTES], "little")
            if length > MAX_FRAME:
                self.abort()
                return
            stop = start + _LENGTH_BYTES + length
            if stop > end:
                break
            with memoryview(buffer) as view:
                batches.append(pickle.loads(view[start + _LENGTH_BYTES : stop]))
            start = stop
        if start:
            del buffer[:start]
        if batches and self._busy_poll is not None:
            self._busy_poll.touch()
        self._receiving = True
        try:
            for messages in batches:
                self._on_messages(messages)
        finally:
            self._receiving = False
        if self._outbox:  # answers made while handling this batch leave now, in one write
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        self._on_lost(exc)

    # --------------------------------------------------------------------------------------- send
    def send(self, message: Any) -> None:
        """Queue ``message``; it leaves with the others of this loop iteration. Dropped once closed."""
        if self.closed:
            return
        outbox = self._outbox
        outbox.append(message)
        if self._receiving or self._flush_scheduled:
            return
        if len(outbox) == 1 and self._idle():
            self._flush()  # nothing else is going on: no batch to wait for, save the loop iteration
            return
        self._flush_scheduled = True
        assert self._loop is not None
        self._loop.call_soon(self._flush)

    def _idle(self) -> bool:
        """Whether the last write was long enough ago that this message is not part of a burst."""
        assert self._loop is not None
        return self._loop.time() - self._last_write > IDLE_AFTER_S

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        if self._transport is not None and outbox:
            self._transport.write(frame(outbox))
            assert self._loop is not None
            self._last_write = self._loop.time()
            if self._busy_poll is not None:
                self._busy_poll.touch()

    def flush(self) -> None:
        """Write what is queued now (before closing)."""
        self._flush()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            raise ConnectionError("the connection closed")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> list[Any]:
    """One frame's messages from a blocking socket."""
    length = int.from_bytes(_recv_exact(sock, _LENGTH_BYTES), "little")
    if length > MAX_FRAME:
        raise ConnectionError("frame too large")
    result: list[Any] = pickle.loads(_recv_exact(sock, length))
    return result


class BlockingChannel:
    """A synchronous request/answer connection (thread-safe: one call at a time)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def call(self, message: Any, timeout: float) -> Any:
        """Send one message and return the one answer; raises ConnectionError/TimeoutError."""
        with self._lock:
            self._sock.settimeout(timeout)
            self._sock.sendall(frame([message]))
            return read_frame(self._sock)[0]

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
