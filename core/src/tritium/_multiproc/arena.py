"""Shared-memory rings that carry tensors between two processes without pickling or socket copies.

One process writes (:class:`ArenaWriter`), one reads (:class:`ArenaReader`); the memory is an anonymous
``memfd`` handed over as a file descriptor, so nothing is left in ``/dev/shm`` when a process dies and the
ring does not count against a container's ``/dev/shm`` size.

The writer places each tensor in a block of the ring and sends only its offset in a control message. The
reader maps the same memory and wraps the block in a numpy array *without copying*; when the last array
viewing the block is gone, the reader marks the block's header released (a single byte store in the shared
memory, no message). The writer reclaims released blocks from the ring's tail the next time it allocates, so
blocks may be released in any order and memory is reused once every older block is released too. When the
ring has no room, :meth:`ArenaWriter.alloc` returns None and the caller sends the bytes another way.

Block layout: a 16-byte header (byte 0: state, bytes 8-15: the block's total length), then the data, the
whole block a multiple of 64 bytes (headers on their own cache lines, data 16-byte aligned).
"""

from __future__ import annotations

import mmap
import os
import weakref
from typing import Any

import numpy as np

HEADER = 16
ALIGN = 64
_IN_USE = 1
_RELEASED = 2
_WRAP = 3  # the rest of the ring up to its end is unused: continue at offset 0
_LENGTH = slice(8, 16)


def _block_length(nbytes: int) -> int:
    return (HEADER + nbytes + ALIGN - 1) // ALIGN * ALIGN


def create_memory(size: int, name: str = "tritium-arena") -> tuple[int, mmap.mmap]:
    """A new anonymous shared memory file of ``size`` bytes (its descriptor, close-on-exec) and its mapping."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return fd, mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise


class ArenaWriter:
    """The writing end of a ring: allocates blocks, fills them, and reclaims those the reader released.

    Not thread-safe: one event loop thread allocates.
    """

    def __init__(self, size: int) -> None:
        if size < 4 * ALIGN or size % ALIGN:
            raise ValueError(f"arena size must be a multiple of {ALIGN} bytes, at least {4 * ALIGN}")
        self.size = size
        self.fd, self._map = create_memory(size)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._head = 0  # where the next block goes
        self._tail = 0  # the oldest block not reclaimed yet
        self._used = 0  # bytes between tail and head, wrap markers included

    @property
    def used(self) -> int:
        """Bytes held by blocks not reclaimed yet (after the last reclaim)."""
        return self._used

    def _reclaim(self) -> None:
        buf = self._bytes
        while self._used:
            state = buf[self._tail]
            if state != _RELEASED and state != _WRAP:
                return
            length = int.from_bytes(self._map[self._tail + 8 : self._tail + 16], "little")
            self._used -= length
            self._tail = 0 if state == _WRAP else self._tail + length
            if self._tail >= self.size:
                self._tail = 0
        self._head = self._tail = 0

    def alloc(self, nbytes: int) -> int | None:
        """The offset of ``nbytes`` bytes of data in a new block (aligned to 16), or None when the ring has no
        contiguous room for them right now."""
        length = _block_length(nbytes)
        if self._used:
            self._reclaim()
        head, tail, size = self._head, self._tail, self.size
        if self._used == 0:
            if length > size:
                return None
            head = 0
        elif head > tail:  # blocks occupy [tail, head): room at the end, or at the start after a wrap
            if size - head < length:
                if tail < length:
                    return None
                self._mark(head, _WRAP, size - head)  # head and size are multiples of ALIGN >= HEADER
                self._used += size - head
                head = 0
        elif tail - head < length:  # wrapped (or full when head == tail): room only between head and tail
            return None
        self._mark(head, _IN_USE, length)
        self._head = head + length if head + length < size else 0
        self._used += length
        return head + HEADER

    def _mark(self, offset: int, state: int, length: int) -> None:
        self._map[offset + 8 : offset + 16] = length.to_bytes(8, "little")
        self._bytes[offset] = state

    def write(self, data: Any) -> int | None:
        """Copy a C-contiguous buffer (bytes, memoryview, numpy array) into a new block; its data offset, or
        None when there is no room."""
        view = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
        nbytes = len(view)
        offset = self.alloc(nbytes)
        if offset is None:
            return None
        if nbytes:
            self._bytes[offset : offset + nbytes] = np.frombuffer(view, dtype=np.uint8)
        return offset

    def close(self) -> None:
        """Drop this process's descriptor; the mapping stays until nothing views it."""
        try:
            os.close(self.fd)
        except OSError:
            pass


class ArenaReader:
    """The reading end of a ring: zero-copy numpy views of blocks, released when the last view is gone."""

    def __init__(self, fd: int, size: int) -> None:
        self.size = size
        self._map = mmap.mmap(fd, size)
        os.close(fd)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._live: dict[int, tuple[weakref.ref[np.ndarray[Any, Any]], int]] = {}

    def view(self, offset: int, nbytes: int) -> np.ndarray[Any, Any]:
        """A uint8 array viewing the block whose data starts at ``offset``; the block is released (for the
        writer to reuse) when that array and every array derived from it are gone."""
        if offset < HEADER or offset + nbytes > self.size or self._bytes[offset - HEADER] != _IN_USE:
            raise ValueError(f"no block in use at offset {offset} of the arena")
        # An array made straight from the mapping (not a slice of another array): numpy then makes it the base
        # of every array derived from it, so its death (reference counting: at once) means no view is left.
        block = np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=offset)
        ref = weakref.ref(block, self._released)
        self._live[id(ref)] = (ref, offset)
        return block

    def release(self, offset: int) -> None:
        """Release a block without a view (e.g. one the message refers to but that could not be decoded)."""
        self._bytes[offset - HEADER] = _RELEASED

    def _released(self, ref: weakref.ref[np.ndarray[Any, Any]]) -> None:
        entry = self._live.pop(id(ref), None)
        if entry is not None:
            self._bytes[entry[1] - HEADER] = _RELEASED

    @property
    def live_blocks(self) -> int:
        """Blocks some array in this process still views."""
        return len(self._live)
