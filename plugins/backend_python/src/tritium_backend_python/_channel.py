"""The stub channel: messages between the server and a stub process, tensors through shared memory.

One Unix stream socket carries control messages: an 8-byte header (payload length, number of buffers) and a
pickled payload. Every numpy array of at least ``inline_limit`` bytes inside a message travels out of band
(pickle protocol 5): the sender copies it into its shared-memory arena and the message carries only where;
the receiver rebuilds the array as a view of the same memory (``copy_out=False``) or as a copy of it. Arenas
are anonymous memory files (``memfd``) handed over once with ``SCM_RIGHTS``, so nothing is left behind in
``/dev/shm`` when either side dies.

An arena is a bump allocator that its owner resets when the peer can no longer hold views into it (the
server resets its arena when no execution of the stub is in progress; a stub resets its own when the server
has read every result it sent). When an arena is full the owner maps a bigger one; the old one stays valid
until the next reset.

A channel is blocking (one thread waits in :meth:`Channel.receive`) unless an event loop drives it
(:meth:`Channel.start_nonblocking`: the loop reads with :meth:`Channel.pump` when the socket is readable, and
sends never block: what the socket does not take waits in a tail the loop writes out). :meth:`Channel.send`
with ``defer`` holds a message back until the next send or the next wait for input, so that answers to
requests already queued go out in one write.

This module runs in stub processes too: it imports only the standard library and numpy.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from typing import Any

import numpy as np

_HEADER = struct.Struct("<II")  # payload bytes, out-of-band buffer count
_DESCRIPTOR = struct.Struct("<IQQ")  # arena id, offset, length
_ALIGN = 64
_MIN_ARENA = 1 << 20
_MAX_FDS = 16
_INCOMPLETE = object()


SMALL_ARRAY_BYTES = 4096
"""Numeric arrays smaller than this travel in the message itself, the rest through shared memory."""


def pack_array(array: Any) -> Any:
    """A small numeric array as ``(dtype, shape, bytes)``: cheaper to pickle and unpickle than the array
    (numpy's pickling costs microseconds per array). Anything else is returned as it is."""
    if type(array) is np.ndarray and array.nbytes < SMALL_ARRAY_BYTES:
        dtype = array.dtype
        if dtype.kind in "biuf":
            return dtype.str, array.shape, array.tobytes()  # C order, whatever the strides
    return array


def unpack_array(value: Any) -> Any:
    """The inverse of :func:`pack_array` (a read-only array over the bytes)."""
    if type(value) is tuple:
        dtype, shape, data = value
        return np.frombuffer(data, dtype).reshape(shape)
    return value


class ChannelClosed(Exception):
    """The peer closed the channel (its process exited) or the socket failed."""


class ChannelTimeout(Exception):
    """No message arrived within the time allowed."""


def _memory_file(size: int) -> int:
    """A file descriptor of ``size`` bytes of shared memory that has no name on any file system."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tritium-python-arena", getattr(os, "MFD_CLOEXEC", 0))
    else:  # pragma: no cover - non-Linux
        directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="tritium-python-arena-", dir=directory)
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


class _Arena:
    """The sending side's shared memory: segments this process created, bump-allocated."""

    def __init__(self) -> None:
        self.segments: dict[int, mmap.mmap] = {}
        self.current = -1
        self.offset = 0
        self.next_id = 1
        self.retired: list[int] = []
        self.new_fds: list[tuple[int, int, int]] = []  # (arena id, fd, size) not yet sent

    def allocate(self, size: int) -> tuple[int, int, memoryview]:
        """Room for ``size`` bytes: (arena id, offset, writable view)."""
        start = (self.offset + _ALIGN - 1) // _ALIGN * _ALIGN
        segment = self.segments.get(self.current)
        if segment is None or start + size > len(segment):
            old = segment
            capacity = max(_MIN_ARENA, size + _ALIGN, 2 * len(old) if old is not None else 0)
            fd = _memory_file(capacity)
            segment = mmap.mmap(fd, capacity)
            arena_id = self.next_id
            self.next_id += 1
            if old is not None:
                self.retired.append(self.current)
            self.segments[arena_id] = segment
            self.current = arena_id
            self.new_fds.append((arena_id, fd, capacity))
            start = 0
        self.offset = start + size
        return self.current, start, memoryview(segment)[start : start + size]

    def reset(self) -> list[int]:
        """Start over at the beginning of the newest segment; returns the ids of the segments dropped."""
        self.offset = 0
        dropped = self.retired
        self.retired = []
        for arena_id in dropped:
            segment = self.segments.pop(arena_id, None)
            if segment is not None:
                try:
                    segment.close()
                except BufferError:
                    pass  # a view is still alive somewhere; the mapping goes when it does
        return dropped

    def close(self) -> None:
        for segment in self.segments.values():
            try:
                segment.close()
            except BufferError:
                pass
        self.segments.clear()
        for _, fd, _ in self.new_fds:
            os.close(fd)
        self.new_fds.clear()


class Channel:
    """One end of the server/stub channel. ``send`` is thread-safe; ``receive`` serves several threads,
    each waiting for the messages of its own key (see :meth:`receive`).

    ``copy_received``: arrays received are copies (the server side, which keeps outputs after the stub
    reuses its arena) instead of read-only views of the peer's arena (the stub side: inputs are valid
    until the server's next execution).
    """

    def __init__(
        self, sock: socket.socket, *, inline_limit: int = SMALL_ARRAY_BYTES, copy_received: bool = False
    ) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._inline_limit = inline_limit
        self._arena = _Arena()
        self._peer: dict[int, mmap.mmap] = {}
        self._peer_fds: deque[int] = deque()
        self._buffer = bytearray()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._mailbox: dict[Any, deque[Any]] = {}
        self._closed = False
        self._error: BaseException | None = None
        self._dropped: list[int] = []
        self._copy = copy_received
        self._deferred: list[bytes] = []
        self._tail: deque[tuple[bytes, list[int]]] = deque()  # unsent (bytes, fds to attach) when non-blocking
        self._on_blocked: Any = None  # non-blocking mode: called when a tail appears
        self.buffers_in_last = 0
        """Out-of-band buffers (peer arena views) of the last message parsed."""

    def fileno(self) -> int:
        return self._sock.fileno()

    def start_nonblocking(self, on_blocked: Any) -> None:
        """Never block in :meth:`send` from now on: what the socket does not take right away waits in a tail,
        and ``on_blocked()`` (called from the sending thread) asks the owner to call :meth:`write_tail` when
        the socket is writable. Reads are the owner's, with :meth:`pump`."""
        with self._send_lock:
            self._on_blocked = on_blocked

    def stop_nonblocking(self) -> None:
        """Back to blocking sends (the tail, if any, is written out first)."""
        with self._send_lock:
            self._on_blocked = None
            while self._tail:
                data, fds = self._tail.popleft()
                self._transmit_blocking(data, fds)

    # -------------------------------------------------------------------------------------- sending
    def send(self, message: Any, *, defer: bool = False) -> None:
        """Pickle ``message`` and send it; large arrays go through this side's arena. With ``defer`` the
        message waits for the next send or the next wait for input (see the module's docstring)."""
        with self._send_lock:
            descriptors: list[bytes] = []
            arena = self._arena
            limit = self._inline_limit

            def out_of_band(buffer: pickle.PickleBuffer) -> bool:
                raw = buffer.raw()
                if raw.nbytes < limit:
                    return True
                arena_id, offset, view = arena.allocate(raw.nbytes)
                view[:] = raw
                descriptors.append(_DESCRIPTOR.pack(arena_id, offset, raw.nbytes))
                return False

            payload = pickle.dumps(message, protocol=5, buffer_callback=out_of_band)
            new = arena.new_fds
            arena.new_fds = []
            dropped = self._dropped
            self._dropped = []
            # Layout: header | new arenas (u32 count, then id u32 + size u64 each) | dropped arenas (u32
            # count, then ids) | buffer descriptors | payload. New arenas' fds ride along as SCM_RIGHTS.
            body = [
                _HEADER.pack(len(payload), len(descriptors)),
                struct.pack("<I", len(new)),
                *(struct.pack("<IQ", arena_id, size) for arena_id, _, size in new),
                struct.pack(f"<I{len(dropped)}I", len(dropped), *dropped),
                *descriptors,
                payload,
            ]
            fds = [fd for _, fd, _ in new]
            if defer and not fds:
                self._deferred.extend(body)
                return
            if self._deferred:
                body[:0] = self._deferred
                self._deferred = []
            self._transmit(b"".join(body), fds)

    def flush(self) -> None:
        """Send the deferred messages now."""
        with self._send_lock:
            if self._deferred:
                data = b"".join(self._deferred)
                self._deferred = []
                self._transmit(data, [])

    def _transmit(self, data: bytes, fds: list[int]) -> None:
        """Send ``data`` (with ``fds`` attached to its first byte); called with the send lock held."""
        if self._on_blocked is None:
            self._transmit_blocking(data, fds)
            return
        if self._tail:
            self._tail.append((data, fds))
            return
        sent = self._send_some(data, fds)
        if sent < len(data):
            self._tail.append((data[sent:], fds if sent == 0 else []))
            self._on_blocked()

    def _send_some(self, data: bytes, fds: list[int]) -> int:
        """Send what the socket takes without blocking; ``fds`` are closed once sent."""
        try:
            if fds:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                sent = self._sock.sendmsg([data], rights, socket.MSG_DONTWAIT)
                for fd in fds:
                    os.close(fd)
                return sent
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise ChannelClosed(f"channel send failed: {exc}") from None

    def write_tail(self) -> bool:
        """Write what the socket takes of the tail (non-blocking mode); True once the tail is empty."""
        with self._send_lock:
            tail = self._tail
            while tail:
                data, fds = tail[0]
                sent = self._send_some(data, fds)
                if sent < len(data):
                    tail[0] = (data[sent:], fds if sent == 0 else [])
                    return False
                tail.popleft()
            return True

    def _transmit_blocking(self, data: bytes, fds: list[int]) -> None:
        try:
            if fds:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                sent = self._sock.sendmsg([data], rights)
                for fd in fds:
                    os.close(fd)
                if sent < len(data):
                    self._sock.sendall(data[sent:])
            else:
                self._sock.sendall(data)
        except OSError as exc:
            raise ChannelClosed(f"channel send failed: {exc}") from None

    def reset_arena(self) -> None:
        """Reuse this side's arena from its start: the peer holds no views into it any more."""
        with self._send_lock:
            self._dropped.extend(self._arena.reset())

    # ------------------------------------------------------------------------------------ receiving
    def receive(self, key: Any = None, *, timeout: float | None = None, route: Any = None) -> Any:
        """The next message for ``key``.

        ``route(message) -> key`` says whose a message is (default: every message is ``None``'s). One
        waiting thread at a time reads the socket; messages for other keys go to their mailboxes and
        wake their waiters. Raises :class:`ChannelTimeout` after ``timeout`` seconds, and
        :class:`ChannelClosed` when the peer is gone.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._cond
        with cond:
            while True:
                box = self._mailbox.get(key)
                if box:
                    return box.popleft()
                if self._error is not None:
                    raise ChannelClosed(str(self._error))
                if not self._reading:
                    self._reading = True
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ChannelTimeout("no message within the time allowed")
                cond.wait(remaining)
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                message = self._read_message(remaining)
                owner = route(message) if route is not None else None
                if owner == key:
                    return message
                with cond:
                    self._mailbox.setdefault(owner, deque()).append(message)
                    cond.notify_all()
        except ChannelClosed as exc:
            with cond:
                self._error = exc
            raise
        finally:
            with cond:
                self._reading = False
                cond.notify_all()

    def _recv(self, flags: int = 0) -> bool:
        """One read of what the socket holds into the buffer; False when nothing was there (non-blocking)."""
        try:
            data, ancillary, _flags, _addr = self._sock.recvmsg(1 << 16, socket.CMSG_SPACE(_MAX_FDS * 4), flags)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise ChannelClosed(f"channel receive failed: {exc}") from None
        self._take_fds(ancillary)
        if not data:
            raise ChannelClosed("the peer closed the channel")
        self._buffer += data
        return True

    def pump(self) -> list[tuple[Any, bool]]:
        """Non-blocking read (for an event loop): the messages now complete, each with whether it refers to
        the peer's arena. Raises :class:`ChannelClosed` when the peer is gone."""
        messages: list[tuple[Any, bool]] = []
        if not self._recv(socket.MSG_DONTWAIT):
            return messages
        while (message := self._parse()) is not _INCOMPLETE:
            messages.append((message, self.buffers_in_last > 0))
        return messages

    def buffered(self) -> bool:
        """Whether a whole message is already read and waiting in the buffer (no system call)."""
        buffer = self._buffer
        size = len(buffer)
        if size < _HEADER.size + 4:
            return False
        length, count = _HEADER.unpack_from(buffer, 0)
        (announced,) = struct.unpack_from("<I", buffer, _HEADER.size)
        position = _HEADER.size + 4 + announced * 12
        if size < position + 4:
            return False
        (dropped,) = struct.unpack_from("<I", buffer, position)
        return bool(size >= position + 4 + dropped * 4 + count * _DESCRIPTOR.size + length)

    def _take_fds(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, fds in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(fds) // 4
                self._peer_fds.extend(struct.unpack(f"{count}i", fds[: count * 4]))

    def _read_message(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (message := self._parse()) is _INCOMPLETE:
            if self._deferred:
                self.flush()  # never wait for input with answers held back
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self._sock], [], [], remaining)[0]:
                    raise ChannelTimeout("no message within the time allowed")
            self._recv()
        return message

    def _parse(self) -> Any:
        """The first message of the buffer, removed from it; ``_INCOMPLETE`` when it is not all there yet."""
        if not self.buffered():
            return _INCOMPLETE
        buffer = self._buffer
        length, count = _HEADER.unpack_from(buffer, 0)
        (announced,) = struct.unpack_from("<I", buffer, _HEADER.size)
        (dropped,) = struct.unpack_from("<I", buffer, _HEADER.size + 4 + announced * 12)
        self.buffers_in_last = count
        position = _HEADER.size + 4
        for _ in range(announced):
            arena_id, size = struct.unpack_from("<IQ", buffer, position)
            position += 12
            if not self._peer_fds:
                raise ChannelClosed("an arena was announced without its file descriptor")
            fd = self._peer_fds.popleft()
            try:
                self._peer[arena_id] = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        position += 4
        for _ in range(dropped):
            (arena_id,) = struct.unpack_from("<I", buffer, position)
            position += 4
            segment = self._peer.pop(arena_id, None)
            if segment is not None:
                try:
                    segment.close()
                except BufferError:
                    pass  # an array still views it; the mapping goes with the last view
        views: list[Any] = []
        for _ in range(count):
            arena_id, offset, nbytes = _DESCRIPTOR.unpack_from(buffer, position)
            position += _DESCRIPTOR.size
            segment = self._peer.get(arena_id)
            if segment is None:
                raise ChannelClosed(f"a message refers to unknown arena {arena_id}")
            view = memoryview(segment)[offset : offset + nbytes]
            views.append(bytearray(view) if self._copy else view.toreadonly())
        payload = bytes(buffer[position : position + length])
        del buffer[: position + length]
        if count:
            return pickle.loads(payload, buffers=views)
        return pickle.loads(payload)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        self._arena.close()
        for segment in self._peer.values():
            try:
                segment.close()
            except BufferError:
                pass
        self._peer.clear()
        while self._peer_fds:
            os.close(self._peer_fds.popleft())
