"""Shared-memory rings between the server and a stub: the bytes of the channel's messages, no system call.

A stub channel's messages used to travel over its Unix socket: a ``send`` and a ``recv`` on each side per
message, and a process wake-up each time, which on a virtual machine cost more than the Python work of a
small request. Here the bytes go through two rings in one shared memory file instead, one per direction,
each written by one process and read by the other (single producer, single consumer), as Triton's C++ stub
does. The socket stays, for what only it can do: hand over file descriptors (``SCM_RIGHTS``), tell a side
that its peer exited (end of file), and wake a side that sleeps (a *doorbell*: one byte, whose value means
nothing).

A side that finds nothing to do polls its inbound ring for a while (it costs no system call) and then goes to
sleep on its socket. So that the peer knows to ring, it first raises its *waiting* flag in the shared memory,
then looks at the ring once more (a message published just before the flag went up is not missed); a side
that publishes bytes then looks at the peer's flag and rings only when it is up (and lowers it, so that the
next message does not ring again). Both "store, then load" sequences are separated by a full memory fence,
else either load could pass the other side's store (x86's store buffer) and a wake-up be lost. Python has no
fence instruction. :class:`Fence` releases a lock the calling thread holds and takes it again: CPython's
locks are POSIX semaphores, whose post is an atomic read-modify-write with release order and whose take one
with acquire order, and a release followed by an acquire is a full fence both on x86 (locked instructions)
and on ARMv8 (whose acquire cannot pass an earlier release). A spurious byte only costs a spurious wake-up.

The bytes themselves need ordering too: the writer's data before its tail, the reader's loads of the data
after the tail and before its head. x86 keeps stores in order and loads before later accesses (total store
order), so there nothing more is needed; on other processors (ARM's weaker model) each ring takes a fence
between its data and its control words (:data:`STRONGLY_ORDERED`, decided from ``platform.machine()``).
That path runs in the tests on x86 as well (its logic, not its ordering: no ARM machine measured it). There are
two flags per side: waiting for bytes to read (rung by the producer of its inbound ring) and waiting for room
to write (rung by the consumer of its outbound ring), so that reading does not wake a peer that only waits for
an answer.

Layout of the shared memory file (every control word a 64-bit integer in a cache line of its own):

====== ====================================================================
offset
====== ====================================================================
0      magic, then the capacity of each ring (bytes, a power of two)
64     server waits for bytes             128  server waits for room
192    stub waits for bytes               256  stub waits for room
320    server -> stub ring: head (bytes read so far)  384: tail (bytes written so far)
448    stub -> server ring: head                       512: tail
576    server -> stub ring: when it last went from empty to not (``time.monotonic_ns``); 640: stub -> server
4096   server -> stub ring's bytes, then the stub -> server ring's bytes
====== ====================================================================

Head and tail only grow (they are 64-bit); their difference is what is waiting. The peer is not trusted to
keep them sane (a model's code runs in the stub): a ring whose words make no sense raises
:class:`RingCorrupted`, which the channel reports as a lost peer.

This module runs in stub processes too: it imports only the standard library.
"""

from __future__ import annotations

import mmap
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable

MAGIC = 0x54524954_52494E47  # "TRITRING"
HEADER_BYTES = 4096
DEFAULT_CAPACITY = 1 << 18

_WORD = 8
_MAGIC_AT, _CAPACITY_AT = 0, 1
_SERVER, _STUB = 0, 1
_DATA_FLAG = (64 // _WORD, 192 // _WORD)  # indexed by side: waits for bytes
_ROOM_FLAG = (128 // _WORD, 256 // _WORD)  # indexed by side: waits for room
_RING_WORDS = ((320 // _WORD, 384 // _WORD), (448 // _WORD, 512 // _WORD))  # (head, tail), by producer side
_FILLED_WORDS = (576 // _WORD, 640 // _WORD)  # when the ring last stopped being empty, by producer side

STRONGLY_ORDERED = platform.machine().lower() in ("x86_64", "amd64", "i386", "i486", "i586", "i686", "x86")
"""Whether this processor keeps a thread's memory accesses in the order that the rings' bytes need (x86's
total store order); elsewhere each ring fences between its data and its control words."""


class Fence:
    """A full memory fence for the threads of one process: the calling thread releases a lock it holds and
    takes it again (see the module docstring). One lock per thread, made on its first fence."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> None:
        lock = getattr(self._local, "lock", None)
        if lock is None:
            lock = self._local.lock = threading.Lock()
            lock.acquire()
        lock.release()
        lock.acquire()


class RingCorrupted(Exception):
    """The peer left a ring's control words in a state no correct peer can produce."""


class Ring:
    """One direction: a byte stream in shared memory. Only one thread of one process writes it, only one
    reads it; ``words[head]`` is the reader's, ``words[tail]`` the writer's."""

    __slots__ = ("_data", "_fence", "_filled", "_head", "_mask", "_tail", "_words", "capacity")

    def __init__(
        self,
        words: memoryview,
        data: memoryview,
        head: int,
        tail: int,
        filled: int,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self._fence = fence
        """Called between the data and the control words (None where the processor keeps them in order)."""
        self._words = words
        self._data = data
        self._head = head
        self._tail = tail
        self._filled = filled
        self.capacity = len(data)
        self._mask = self.capacity - 1

    def _waiting(self) -> int:
        waiting: int = self._words[self._tail] - self._words[self._head]
        if not 0 <= waiting <= self.capacity:
            raise RingCorrupted(f"ring control words out of range ({waiting} bytes waiting)")
        return waiting

    def readable(self) -> int:
        """Bytes waiting to be read."""
        return self._waiting()

    def writable(self) -> int:
        """Room for bytes to write."""
        return self.capacity - self._waiting()

    def write(self, data: memoryview) -> int:
        """Copy as much of ``data`` as there is room for; returns how much (the reader sees it all at once)."""
        words = self._words
        tail = words[self._tail]
        used = tail - words[self._head]
        if not 0 <= used <= self.capacity:
            raise RingCorrupted(f"ring control words out of range ({used} bytes waiting)")
        count = min(len(data), self.capacity - used)
        if count:
            fence = self._fence
            if fence is not None:
                fence()  # the reader's loads of the room (before its head) are done before we overwrite it
            if not used:
                words[self._filled] = time.monotonic_ns()
            start = tail & self._mask
            first = min(count, self.capacity - start)
            self._data[start : start + first] = data[:first]
            if first < count:
                self._data[: count - first] = data[first:count]
            if fence is not None:
                fence()  # the bytes are visible before the tail that publishes them
            words[self._tail] = tail + count
        return count

    def filled_at_ns(self) -> int:
        """When the writer last wrote into the empty ring (``time.monotonic_ns``; a hint only: the peer
        writes it)."""
        filled: int = self._words[self._filled]
        return filled

    def read_into(self, buffer: bytearray) -> int:
        """Append every byte waiting to ``buffer``; returns how many."""
        words = self._words
        head = words[self._head]
        count = words[self._tail] - head
        if not 0 <= count <= self.capacity:
            raise RingCorrupted(f"ring control words out of range ({count} bytes waiting)")
        if count:
            fence = self._fence
            if fence is not None:
                fence()  # the bytes are loaded after the tail that published them
            start = head & self._mask
            first = min(count, self.capacity - start)
            buffer += self._data[start : start + first]
            if first < count:
                buffer += self._data[: count - first]
            if fence is not None:
                fence()  # the bytes are copied before the head gives their room back
            words[self._head] = head + count
        return count


class RingPair:
    """One side's view of the shared memory: its outbound and inbound rings and both sides' flags.

    Make the server's with :meth:`create` (it owns the file; :attr:`fd` goes to the stub, then
    :meth:`close_fd`) and the stub's with :meth:`attach`.
    """

    def __init__(self, fd: int, side: int, *, owns_fd: bool, strongly_ordered: bool = STRONGLY_ORDERED) -> None:
        size = os.fstat(fd).st_size
        if size < HEADER_BYTES + 2:
            raise RingCorrupted(f"ring file of {size} bytes is too small")
        self._map = mmap.mmap(fd, size)
        self.fd: int | None = fd if owns_fd else None
        if not owns_fd:
            os.close(fd)
        self._views: list[memoryview] = []
        whole = self._view(memoryview(self._map))
        self._words = words = self._view(whole[:HEADER_BYTES].cast("Q"))
        capacity = words[_CAPACITY_AT]
        if words[_MAGIC_AT] != MAGIC or capacity <= 0 or capacity & (capacity - 1) or \
                HEADER_BYTES + 2 * capacity != size:
            self.close()
            raise RingCorrupted("not a ring file of this version")
        peer = 1 - side
        self.fence = Fence()
        """A full memory fence (see the module's docstring)."""
        data_fence = None if strongly_ordered else self.fence
        rings = []
        for producer in (_SERVER, _STUB):
            start = HEADER_BYTES + producer * capacity
            rings.append(Ring(words, self._view(whole[start : start + capacity]), *_RING_WORDS[producer],
                              _FILLED_WORDS[producer], data_fence))
        self.outbound = rings[side]
        self.inbound = rings[peer]
        self._my_data, self._my_room = _DATA_FLAG[side], _ROOM_FLAG[side]
        self._peer_data, self._peer_room = _DATA_FLAG[peer], _ROOM_FLAG[peer]

    def _view(self, view: memoryview) -> memoryview:
        self._views.append(view)
        return view

    @classmethod
    def create(cls, capacity: int = DEFAULT_CAPACITY, *, strongly_ordered: bool = STRONGLY_ORDERED) -> RingPair:
        """The server's side of a new, empty pair of rings of ``capacity`` bytes each (a power of two)."""
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two, got {capacity}")
        fd = memory_file(HEADER_BYTES + 2 * capacity, "tritium-python-rings")
        with mmap.mmap(fd, HEADER_BYTES) as header:
            words = memoryview(header).cast("Q")
            words[_MAGIC_AT] = MAGIC
            words[_CAPACITY_AT] = capacity
            words.release()
        return cls(fd, _SERVER, owns_fd=True, strongly_ordered=strongly_ordered)

    @classmethod
    def attach(cls, fd: int, *, strongly_ordered: bool = STRONGLY_ORDERED) -> RingPair:
        """The stub's side of the rings in the shared memory file ``fd`` (closed here, the mapping stays)."""
        return cls(fd, _STUB, owns_fd=False, strongly_ordered=strongly_ordered)

    def close_fd(self) -> None:
        """Close the file descriptor once the stub has its own (the mapping stays)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    # --------------------------------------------------------------------------------- doorbell flags
    def wait_for_data(self, waiting: bool) -> None:
        """Raise (before sleeping; then call :meth:`fence` and look again) or lower this side's flag."""
        self._words[self._my_data] = 1 if waiting else 0

    def wait_for_room(self, waiting: bool) -> None:
        self._words[self._my_room] = 1 if waiting else 0

    def peer_wants_data(self) -> bool:
        """After publishing bytes: whether to ring the peer's doorbell (its flag is lowered here; a fence
        first)."""
        return self._take_peer_flag(self._peer_data)

    def peer_wants_room(self) -> bool:
        """After reading bytes: whether to ring the peer's doorbell (it waits to write; a fence first)."""
        return self._take_peer_flag(self._peer_room)

    def _take_peer_flag(self, index: int) -> bool:
        """Fence, then lower the peer's flag ``index`` if it is up; whether it was."""
        self.fence()
        words = self._words
        if words[index]:
            words[index] = 0
            return True
        return False

    def peer_sleeps(self) -> bool:
        """Whether the peer's flag for bytes is up (no fence: a hint, e.g. to hold messages back for one
        doorbell)."""
        return bool(self._words[self._peer_data])

    def close(self) -> None:
        self.close_fd()
        for view in reversed(self._views):
            view.release()
        self._views.clear()
        self._map.close()


def memory_file(size: int, name: str) -> int:
    """A file descriptor of ``size`` bytes of zeroed shared memory without a name on any file system (``name``
    only labels it, e.g. in /proc/<pid>/fd)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name, getattr(os, "MFD_CLOEXEC", 0))
    else:  # pragma: no cover - non-Linux
        directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix=f"{name}-", dir=directory)
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd
