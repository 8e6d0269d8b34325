"""The stub channel: messages between the server and a stub process, tensors through shared memory.

One Unix stream socket carries control messages: an 8-byte header (payload length, number of buffers) and a
pickled payload. Every numpy array of at least ``inline_limit`` bytes inside a message travels out of band
(pickle protocol 5): the sender copies it into its shared-memory arena and the message carries only where;
the receiver rebuilds the array as a view of the same memory (``copy_out=False``) or as a copy of it. Arenas
are anonymous memory files (``memfd``) handed over once with ``SCM_RIGHTS``, so nothing is left behind in
``/dev/shm`` when either side dies.

An arena is a bump allocator that its owner resets when the peer can no longer hold views into it (the
server resets its arena at each new execution; a stub resets its own likewise). When an arena is full the
owner maps a bigger one; the old one stays valid until the next reset.

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

    # -------------------------------------------------------------------------------------- sending
    def send(self, message: Any) -> None:
        """Pickle ``message`` and send it; large arrays go through this side's arena."""
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
            try:
                if new:
                    fds = [fd for _, fd, _ in new]
                    data = b"".join(body)
                    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                    sent = self._sock.sendmsg([data], rights)
                    for fd in fds:
                        os.close(fd)
                    if sent < len(data):
                        self._sock.sendall(data[sent:])
                else:
                    self._sock.sendall(b"".join(body))
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

    def _fill(self, wanted: int, timeout: float | None) -> None:
        """Read until the buffer holds ``wanted`` bytes."""
        buffer = self._buffer
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(buffer) < wanted:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self._sock], [], [], remaining)[0]:
                    raise ChannelTimeout("no message within the time allowed")
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(
                    max(wanted - len(buffer), 1 << 16), socket.CMSG_SPACE(_MAX_FDS * 4)
                )
            except OSError as exc:
                raise ChannelClosed(f"channel receive failed: {exc}") from None
            self._take_fds(ancillary)
            if not data:
                raise ChannelClosed("the peer closed the channel")
            buffer += data

    def _take_fds(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, fds in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(fds) // 4
                self._peer_fds.extend(struct.unpack(f"{count}i", fds[: count * 4]))

    def _read_message(self, timeout: float | None) -> Any:
        self._fill(_HEADER.size + 4, timeout)
        buffer = self._buffer
        length, count = _HEADER.unpack_from(buffer, 0)
        (announced,) = struct.unpack_from("<I", buffer, _HEADER.size)
        self._fill(_HEADER.size + 4 + announced * 12 + 4, None)
        (dropped,) = struct.unpack_from("<I", buffer, _HEADER.size + 4 + announced * 12)
        head = _HEADER.size + 4 + announced * 12 + 4 + dropped * 4 + count * _DESCRIPTOR.size
        self._fill(head + length, None)
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
