"""The stub channel: messages between the server and a stub process, tensors through shared memory.

A message is a 16-byte header (payload length, out-of-band buffers, arenas announced, arenas dropped), the
announcements and descriptors, and a pickled payload. Its bytes travel through this side's ring in shared
memory (``_ring.py``: no system call per message); the Unix socket beside it carries only doorbell bytes
(a wake-up for a peer that sleeps), file descriptors and the peer's exit. Every numpy array of at least
``inline_limit`` bytes inside a message travels out of band (pickle protocol 5): the sender copies it into
its shared-memory arena and the message carries only where; the receiver rebuilds the array as a view of
the same memory (``copy_received=False``) or as a copy of it. Arenas are anonymous memory files (``memfd``)
handed over once with ``SCM_RIGHTS`` (ahead of the message that announces them), so nothing is left behind
in ``/dev/shm`` when either side dies.

An arena is a bump allocator that its owner resets when the peer can no longer hold views into it (the
server resets its arena when no execution of the stub is in progress; a stub resets its own when the server
has read every result it sent). When an arena is full the owner maps a bigger one; the old one stays valid
until the next reset.

A channel is blocking (one thread waits in :meth:`Channel.receive`: it polls the ring for a while, then
sleeps on the socket) unless an event loop drives it (:meth:`Channel.start_nonblocking`: the loop takes
messages with :meth:`Channel.poll`, or :meth:`Channel.pump` when the socket is readable, and sends never
block: what the ring has no room for waits in a tail the loop writes out). A message larger than a ring
streams through it.

This module runs in stub processes too: it imports only the standard library and numpy.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import socket
import struct
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from tritium_backend_python._ring import DEFAULT_CAPACITY, STRONGLY_ORDERED, RingCorrupted, RingPair, memory_file

_HEADER = struct.Struct("<IIII")  # payload bytes, out-of-band buffers, arenas announced, arenas dropped
_HEADER_BYTES = _HEADER.size
_DESCRIPTOR = struct.Struct("<IQQ")  # arena id, offset, length
_ALIGN = 64
_MIN_ARENA = 1 << 20
_MAX_FDS = 16
_INCOMPLETE = object()
_DOORBELL_READ = 4096
_SAFETY_S = 1.0


PROBE_EVERY = 64
"""A blocking receive that would sleep at once polls anyway after this many such waits in a row (see
:meth:`Channel._wait_for_input`)."""
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
            fd = memory_file(capacity, "tritium-python-arena")
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

    ``rings``: this side's view of the shared-memory rings the messages' bytes travel through (see
    ``_ring.py``); ``sock`` then carries only doorbell bytes, file descriptors and the peer's exit.
    ``copy_received``: arrays received are copies (the server side, which keeps outputs after the stub
    reuses its arena) instead of read-only views of the peer's arena (the stub side: inputs are valid
    until the server's next execution). ``poll_s``: how long a blocking :meth:`receive` polls the inbound
    ring before it sleeps on the socket (0: it sleeps at once); ``yield_while_polling`` gives the processor
    to any other runnable thread between two looks (``sched_yield``).
    """

    def __init__(
        self,
        sock: socket.socket,
        rings: RingPair,
        *,
        inline_limit: int = SMALL_ARRAY_BYTES,
        copy_received: bool = False,
        poll_s: float = 0.0,
        yield_while_polling: bool = False,
    ) -> None:
        sock.setblocking(True)
        # A blocking read of the doorbell returns after a second at most (a safety net: a wake-up is never
        # lost where the fence of _ring.py is a full fence, as on x86), without a separate wait (select).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", int(_SAFETY_S), 0))
        self._sock = sock
        self._rings = rings
        self._outbound = rings.outbound
        self._inbound = rings.inbound
        self._poll_s = poll_s
        self._last_wait = 1e-9  # seconds the last wait for input took
        self._sleeps = 0  # waits in a row that slept without polling first
        self._yield = yield_while_polling and hasattr(os, "sched_yield")
        self._inline_limit = inline_limit
        self._arena = _Arena()
        self._descriptors: list[bytes] = []  # of the message being sent (send lock held)
        self._peer: dict[int, mmap.mmap] = {}
        self._peer_fds: deque[int] = deque()
        self._buffer = bytearray()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._mailbox: dict[Any, deque[Any]] = {}
        self._closed = False
        self._eof = False  # the socket said the peer is gone (what it wrote before is still read)
        self._error: BaseException | None = None
        self._dropped: list[int] = []
        self._copy = copy_received
        self._tail: deque[bytes] = deque()  # bytes the ring had no room for (non-blocking mode)
        self._on_blocked: Any = None  # non-blocking mode: called when a tail appears
        self._defer_doorbell: Any = None  # non-blocking mode: schedules ring_doorbell_if_wanted()
        self._doorbell_due = False
        self.buffers_in_last = 0
        """Out-of-band buffers (peer arena views) of the last message parsed."""

    def fileno(self) -> int:
        return self._sock.fileno()

    def start_nonblocking(self, on_blocked: Any, defer_doorbell: Any = None) -> None:
        """Never block in :meth:`send` from now on: what the outbound ring has no room for waits in a tail,
        and ``on_blocked()`` (called from the sending thread) asks the owner to call :meth:`write_tail`
        (after :meth:`poll` or :meth:`pump`; :meth:`prepare_sleep` asks the peer to ring when it made room).
        Reads are the owner's, with :meth:`poll` and :meth:`pump`.

        With ``defer_doorbell``, a send does not ring a sleeping peer itself: it calls ``defer_doorbell()``
        (once until the owner calls :meth:`ring_doorbell_if_wanted`), so that the messages sent in one turn
        of the owner's event loop wake the peer once, together."""
        with self._send_lock:
            self._on_blocked = on_blocked
            self._defer_doorbell = defer_doorbell

    def stop_nonblocking(self) -> None:
        """Back to blocking sends (the tail, if any, is written out first)."""
        with self._send_lock:
            self._on_blocked = None
            self._defer_doorbell = None
            self._ring_if_due()
            while self._tail:
                self._write_blocking(memoryview(self._tail.popleft()))

    # -------------------------------------------------------------------------------------- sending
    def send(self, message: Any) -> None:
        """Pickle ``message`` and send it; large arrays go through this side's arena."""
        with self._send_lock:
            descriptors = self._descriptors = []
            arena = self._arena
            payload = pickle.dumps(message, protocol=5, buffer_callback=self._out_of_band)
            new = arena.new_fds
            dropped = self._dropped
            if new or dropped or descriptors:
                arena.new_fds = []
                self._dropped = []
                # Layout: header | new arenas (id u32 + size u64 each) | dropped arenas (u32 ids) | buffer
                # descriptors | payload. New arenas' fds go ahead over the socket.
                frame = b"".join([
                    _HEADER.pack(len(payload), len(descriptors), len(new), len(dropped)),
                    *(struct.pack("<IQ", arena_id, size) for arena_id, _, size in new),
                    struct.pack(f"<{len(dropped)}I", *dropped),
                    *descriptors,
                    payload,
                ])
                if new:
                    self._send_fds([fd for _, fd, _ in new])
            else:
                frame = _HEADER.pack(len(payload), 0, 0, 0) + payload
            self._transmit(frame)

    def _out_of_band(self, buffer: pickle.PickleBuffer) -> bool:
        """Pickle's buffer callback (send lock held): a buffer of at least ``inline_limit`` bytes goes to the
        arena (False: not in the pickle), a smaller one into the pickle."""
        raw = buffer.raw()
        if raw.nbytes < self._inline_limit:
            return True
        arena_id, offset, view = self._arena.allocate(raw.nbytes)
        view[:] = raw
        self._descriptors.append(_DESCRIPTOR.pack(arena_id, offset, raw.nbytes))
        return False

    def peer_sleeps(self) -> bool:
        """Whether the peer waits for a doorbell to read (a hint, see :meth:`RingPair.peer_sleeps`)."""
        return self._rings.peer_sleeps()

    def _send_fds(self, fds: list[int]) -> None:
        """Hand ``fds`` to the peer ahead of the message that announces them (they are closed here). The
        byte they ride on doubles as a doorbell."""
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
            self._sock.sendmsg([b"\0"], rights)
        except OSError as exc:
            raise ChannelClosed(f"channel send failed: {exc}") from None
        finally:
            for fd in fds:
                os.close(fd)

    def _ring_doorbell(self) -> None:
        try:
            self._sock.send(b"\0", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass  # the socket is full of doorbell bytes: the peer has wake-ups enough
        except OSError as exc:
            raise ChannelClosed(f"channel send failed: {exc}") from None

    def ring_doorbell_if_wanted(self) -> None:
        """Ring the peer's doorbell for the messages sent since the last call, if it sleeps (see
        :meth:`start_nonblocking`)."""
        with self._send_lock:
            self._ring_if_due()

    def _ring_if_due(self) -> None:
        """Ring for the messages written since the last doorbell, if the peer sleeps (send lock held)."""
        if self._doorbell_due:
            self._doorbell_due = False
            if self._rings.peer_wants_data():
                self._ring_doorbell()

    def _write(self, data: memoryview) -> int:
        """Put what fits of ``data`` in the outbound ring, ringing the peer if it sleeps (or leaving that to
        the owner, see :meth:`start_nonblocking`); returns how much."""
        try:
            written = self._outbound.write(data)
            if not written:
                return 0
            defer = self._defer_doorbell
            if defer is not None:
                if not self._doorbell_due:
                    self._doorbell_due = True
                    defer()
            elif self._rings.peer_wants_data():
                self._ring_doorbell()
        except RingCorrupted as exc:
            raise ChannelClosed(f"the peer corrupted the channel: {exc}") from None
        return written

    def _transmit(self, data: bytes) -> None:
        """Send ``data``; called with the send lock held."""
        if self._tail:  # non-blocking mode, the ring full: keep the order
            self._tail.append(data)
            return
        view = memoryview(data)
        written = self._write(view)
        if written == len(data):
            return
        if self._on_blocked is None:
            self._write_blocking(view[written:])
            return
        self._tail.append(data[written:])
        self._on_blocked()

    def write_tail(self) -> bool:
        """Write what the outbound ring takes of the tail (non-blocking mode); True once the tail is empty."""
        with self._send_lock:
            tail = self._tail
            while tail:
                data = tail[0]
                written = self._write(memoryview(data))
                if written < len(data):
                    tail[0] = data[written:]
                    return False
                tail.popleft()
            return True

    def has_tail(self) -> bool:
        return bool(self._tail)

    def _write_blocking(self, view: memoryview) -> None:
        """Write all of ``view``, waiting for room as long as the peer lives (send lock held). The ring is
        full only when the peer falls far behind, so this waits by sleeping a little, longer each time,
        rather than on the socket (which another thread may be reading)."""
        delay = 20e-6
        while view:
            written = self._write(view)
            if written:
                view = view[written:]
                delay = 20e-6
                continue
            if self._peer_gone():
                raise ChannelClosed("the peer closed the channel")
            time.sleep(delay)
            delay = min(2 * delay, 0.005)

    def _peer_gone(self) -> bool:
        if self._eof:
            return True
        poller = select.poll()
        poller.register(self._sock, select.POLLRDHUP)
        return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))

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
        except ValueError:
            if not self._closed:
                raise
            # Closed by another thread while this one waited (an unload under a hung execution): the rings'
            # memory is released under the reader, which is the channel closing, not a failure of its own.
            closed = ChannelClosed("the channel was closed")
            with cond:
                self._error = closed
            raise closed from None
        finally:
            with cond:
                self._reading = False
                cond.notify_all()

    # ------------------------------------------------------------------------ the socket and the ring
    def _drain_socket(self, block: bool = False) -> None:
        """Read what the socket holds: doorbell bytes (dropped), file descriptors (kept for the messages that
        announce them), the peer's exit (remembered in ``_eof``). With ``block``, wait for the first byte
        (one system call for a sleep and its wake-up)."""
        sock = self._sock
        space = socket.CMSG_SPACE(_MAX_FDS * 4)
        flags = 0 if block else socket.MSG_DONTWAIT
        while not self._eof:
            try:
                data, ancillary, _flags, _addr = sock.recvmsg(_DOORBELL_READ, space, flags)
            except BlockingIOError:
                return
            except OSError as exc:
                raise ChannelClosed(f"channel receive failed: {exc}") from None
            if not data:
                self._eof = True
            elif ancillary:
                self._take_fds(ancillary)  # more may follow: a read stops where file descriptors start
            elif len(data) < _DOORBELL_READ:
                return  # the socket is empty now
            flags = socket.MSG_DONTWAIT

    def _fill(self) -> bool:
        """Move what the inbound ring holds to the buffer (no system call unless the peer waits for room);
        False when it held nothing."""
        try:
            if not self._inbound.read_into(self._buffer):
                return False
            if self._rings.peer_wants_room():
                self._ring_doorbell()
        except RingCorrupted as exc:
            raise ChannelClosed(f"the peer corrupted the channel: {exc}") from None
        return True

    def _wait_for_input(self, deadline: float | None) -> None:
        """Wait until the inbound ring has bytes, or a wake-up. Raises :class:`ChannelClosed` once the peer is
        gone and everything it wrote was read.

        It polls the ring first, for up to ``poll_s``, when the last wait was no longer than that (the
        next message is then likely to come while it polls; a channel whose messages come further apart
        sleeps at once and burns nothing), giving the processor to any other runnable thread between two
        looks. Then it sleeps on the socket with its flag up. A wait that slept counts until the peer wrote
        (the ring's :meth:`~Ring.filled_at_ns`), not until this side woke: else one late wake-up would
        make every later wait look long (it includes the wake-up), and the channel would sleep for good
        at a rate where polling catches every message.

        Sleeping also lengthens the gaps it measures: the peer, waiting for an answer that comes a wake-up
        late, sleeps too and answers its own client a wake-up late. So a channel whose gaps exceed
        ``poll_s`` only while it sleeps would never find out that polling catches every message; after
        :data:`PROBE_EVERY` waits in a row that slept, the next polls first (at most ``poll_s`` of processor
        time per that many messages), and what it measures decides the waits after it."""
        inbound = self._inbound
        clock = time.monotonic
        start = clock()
        try:
            poll = self._poll_s > 0 and (self._last_wait <= self._poll_s or self._sleeps >= PROBE_EVERY)
            self._sleeps = 0 if poll else self._sleeps + 1
            if poll:
                end = start + self._poll_s
                pause = os.sched_yield if self._yield else None
                while not inbound.readable():
                    if clock() >= end:
                        break
                    if pause is not None:
                        pause()
                else:
                    self._last_wait = max(clock() - start, 1e-9)
                    return
            if self._eof:
                raise ChannelClosed("the peer closed the channel")
            rings = self._rings
            rings.wait_for_data(True)
            try:
                rings.fence()
                if inbound.readable():
                    return
                remaining = None if deadline is None else deadline - clock()
                if remaining is not None and remaining <= 0:
                    raise ChannelTimeout("no message within the time allowed")
                if remaining is None:
                    self._drain_socket(block=True)
                elif select.select([self._sock], [], [], remaining)[0]:
                    self._drain_socket()
            finally:
                rings.wait_for_data(False)
                self._last_wait = self._slept_wait(start, clock())
        except RingCorrupted as exc:
            raise ChannelClosed(f"the peer corrupted the channel: {exc}") from None

    def _slept_wait(self, start: float, now: float) -> float:
        """How long a wait that slept waited for the peer: from ``start`` until the peer wrote into the empty
        ring, when that lies between the two (the peer's word is only a hint), else until ``now``."""
        filled = self._inbound.filled_at_ns() / 1e9
        end = filled if start <= filled <= now else now
        return max(end - start, 1e-9)

    def poll(self) -> list[tuple[Any, bool]]:
        """Non-blocking read of the inbound ring (for an event loop; no system call): the messages now
        complete, each with whether it refers to the peer's arena."""
        messages: list[tuple[Any, bool]] = []
        if self._fill():
            while (message := self._parse()) is not _INCOMPLETE:
                messages.append((message, self.buffers_in_last > 0))
        return messages

    def pump(self) -> list[tuple[Any, bool]]:
        """What :meth:`poll` returns, after reading the socket (call it when the socket is readable: a
        doorbell, or the peer's exit). Raises :class:`ChannelClosed` when the peer is gone and nothing it
        wrote is left to read."""
        self.stop_waiting()
        self._drain_socket()
        messages = self.poll()
        if self._eof and not messages:
            raise ChannelClosed("the peer closed the channel")
        return messages

    def prepare_sleep(self) -> bool:
        """Before an event loop stops polling: raise this side's flags (bytes to read; room to write when a
        tail waits) so that the peer rings the socket; False (flags lowered again) when there is something
        to do already, so that the caller polls on instead."""
        rings = self._rings
        tail = bool(self._tail)
        rings.wait_for_data(True)
        if tail:
            rings.wait_for_room(True)
        rings.fence()
        try:
            busy = self._inbound.readable() > 0 or (tail and self._outbound.writable() > 0)
        except RingCorrupted:
            busy = True  # the next poll reports it
        if busy:
            rings.wait_for_data(False)
            rings.wait_for_room(False)
        return not busy

    def stop_waiting(self) -> None:
        """Lower this side's flags (it polls again: no doorbell needed)."""
        self._rings.wait_for_data(False)
        self._rings.wait_for_room(False)

    def _take_fds(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, fds in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(fds) // 4
                self._peer_fds.extend(struct.unpack(f"{count}i", fds[: count * 4]))

    def _read_message(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (message := self._parse()) is _INCOMPLETE:
            if not self._fill():
                self._wait_for_input(deadline)
        return message

    def _parse(self) -> Any:
        """The first message of the buffer, removed from it; ``_INCOMPLETE`` when it is not all there yet."""
        buffer = self._buffer
        size = len(buffer)
        if size < _HEADER_BYTES:
            return _INCOMPLETE
        length, count, announced, dropped = _HEADER.unpack_from(buffer)
        if not (count or announced or dropped):  # the common case: everything in the payload
            end = _HEADER_BYTES + length
            if size < end:
                return _INCOMPLETE
            payload = buffer[_HEADER_BYTES:end]
            del buffer[:end]
            self.buffers_in_last = 0
            return pickle.loads(payload)
        position = _HEADER_BYTES
        end = position + announced * 12 + dropped * 4 + count * _DESCRIPTOR.size + length
        if size < end:
            return _INCOMPLETE
        self.buffers_in_last = count
        for _ in range(announced):
            arena_id, arena_size = struct.unpack_from("<IQ", buffer, position)
            position += 12
            if not self._peer_fds:
                self._drain_socket()  # sent ahead of the message: in the socket already
            if not self._peer_fds:
                raise ChannelClosed("an arena was announced without its file descriptor")
            fd = self._peer_fds.popleft()
            try:
                self._peer[arena_id] = mmap.mmap(fd, arena_size)
            except (OSError, ValueError, OverflowError) as exc:
                raise ChannelClosed(f"cannot map the peer's arena {arena_id}: {exc}") from None
            finally:
                os.close(fd)
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
            if len(view) != nbytes:
                raise ChannelClosed(f"a message refers to bytes beyond the end of arena {arena_id}")
            views.append(bytearray(view) if self._copy else view.toreadonly())
        payload = buffer[position:end]
        del buffer[:end]
        return pickle.loads(payload, buffers=views)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        self._arena.close()
        self._rings.close()
        for segment in self._peer.values():
            try:
                segment.close()
            except BufferError:
                pass
        self._peer.clear()
        while self._peer_fds:
            os.close(self._peer_fds.popleft())


def connected_channels(
    *, capacity: int = DEFAULT_CAPACITY, poll_s: float = 0.0, strongly_ordered: bool = STRONGLY_ORDERED
) -> tuple[Channel, Channel]:
    """(server end, stub end) of a channel within one process, connected as the backend connects a stub
    (for tests: the ends may live in different threads; ``strongly_ordered`` False runs the rings' fences
    of weakly ordered processors)."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server_rings = RingPair.create(capacity, strongly_ordered=strongly_ordered)
    assert server_rings.fd is not None
    stub_rings = RingPair.attach(os.dup(server_rings.fd), strongly_ordered=strongly_ordered)
    server_rings.close_fd()
    return (Channel(left, server_rings, copy_received=True, poll_s=poll_s),
            Channel(right, stub_rings, copy_received=False, poll_s=poll_s))
