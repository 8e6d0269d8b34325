"""Client shared memory regions registered through any worker, usable from every worker.

Frontends read inputs from and write outputs to client regions themselves, in their worker, so every worker
needs every region open. The regions' table (name, key, offset, size) lives in one file of the server's run
directory, changed under an exclusive ``flock`` and stamped with a generation number; each worker's
:class:`SharedRegistry` re-reads the table whenever the generation moved before it answers, and opens or
closes regions to match. A registration is therefore visible to every worker as soon as the call that made it
returns, and an unregistered region is refused by all of them from then on.

A region is the object that was registered, not whatever its key names later: a row also holds the object's
identity (device and inode) and the processes holding it open (``/proc/<pid>/fd/<fd>``). A worker opens the
key and checks the identity; when the client unlinked the object after registering it (still usable in a
single process, which keeps it open), or replaced it with another one of the same name, the worker opens it
through a holder instead. Every worker that opens a region adds itself as a holder, so the region outlives
the worker that registered it.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from tritium._base.errors import TritiumError
from tritium._runtime.shm import SharedMemoryRegistry, open_shm_object, shm_object_name

TABLE_NAME = "shm-regions.json"
_GENERATION = 8


def create_table(run_dir: Path) -> Path:
    """The empty table of a new server (generation 0, no regions)."""
    path = run_dir / TABLE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, (0).to_bytes(_GENERATION, "little") + b"[]", 0)
    finally:
        os.close(fd)
    return path


@attrs.define(slots=True, eq=False)
class SharedRegistry(SharedMemoryRegistry):
    """A :class:`SharedMemoryRegistry` kept equal to the server-wide table of regions."""

    table: Path | None = None
    _fd: int = attrs.field(default=-1, init=False)
    _generation: int = attrs.field(default=-1, init=False)
    _rows: dict[str, list[Any]] = attrs.field(factory=dict, init=False)
    """The table as last read or written: name -> [name, key, offset, byte_size, device, inode, holders]."""

    def __attrs_post_init__(self) -> None:
        if self.table is not None:
            self._fd = os.open(self.table, os.O_RDWR | os.O_CLOEXEC)

    # ---------------------------------------------------------------------------------- the table
    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read_generation(self) -> int:
        return int.from_bytes(os.pread(self._fd, _GENERATION, 0), "little")

    def _read_rows(self) -> list[list[Any]]:
        size = os.fstat(self._fd).st_size
        rows: list[list[Any]] = json.loads(os.pread(self._fd, size - _GENERATION, _GENERATION) or b"[]")
        return rows

    def _write_rows(self, *, new_generation: bool = True) -> None:
        """Write :attr:`_rows`; ``new_generation`` False when no worker needs to re-read (a holder added)."""
        body = json.dumps(list(self._rows.values())).encode()
        generation = self._read_generation() + (1 if new_generation else 0)
        os.pwrite(self._fd, generation.to_bytes(_GENERATION, "little") + body, 0)
        os.ftruncate(self._fd, _GENERATION + len(body))
        self._generation = generation

    def _sync(self) -> None:
        """Open and close regions so that this worker holds exactly the table's (caller holds no lock)."""
        if self._fd < 0:
            return
        generation = self._read_generation()
        if generation == self._generation:
            return
        with self._locked():
            self._apply(self._read_rows())
            self._generation = self._read_generation()

    def _apply(self, rows: list[list[Any]]) -> None:
        """Hold exactly the regions of ``rows`` (caller holds the table lock)."""
        self._rows = {row[0]: row for row in rows}
        for name, region in list(self._regions.items()):
            row = self._rows.get(name)
            held = [region.key, region.offset, region.byte_size, *_object_identity(region.fd)]
            if row is None or held != row[1:6]:
                super().unregister(name)
        added = False
        for name, row in self._rows.items():
            if name in self._regions:
                continue
            _, key, offset, byte_size, device, inode, holders = row
            fd = _open_registered(key, (device, inode), holders)
            if fd is None:
                # The object is gone (unlinked, and no process holds it any more): requests naming the region
                # fail as they would in one process whose client removed it.
                continue
            if super()._adopt(name, key, offset, byte_size, fd):
                holders.append([os.getpid(), fd])
                added = True
        if added:
            self._write_rows(new_generation=False)

    # ------------------------------------------------------------------------ registry operations
    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if self._fd < 0:
            super().register(name, key, offset, byte_size)
            return
        self._check_allowed()
        with self._locked():
            self._apply(self._read_rows())
            super().register(name, key, offset, byte_size)
            fd = self._descriptor(name)
            self._rows[name] = [name, key, offset, byte_size, *_object_identity(fd), [[os.getpid(), fd]]]
            self._write_rows()

    def unregister(self, name: str | None = None) -> None:
        if self._fd < 0:
            super().unregister(name)
            return
        self._check_allowed()
        with self._locked():
            self._apply(self._read_rows())
            super().unregister(name)
            for gone in list(self._rows) if name is None else [name]:
                self._rows.pop(gone, None)
            self._write_rows()

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        self._sync()
        return super().status(name)

    def read(self, name: str, offset: int, byte_size: int) -> memoryview:
        self._sync()
        return super().read(name, offset, byte_size)

    def write(self, name: str, offset: int, data: bytes | memoryview, byte_size: int | None = None) -> None:
        self._sync()
        super().write(name, offset, data, byte_size)

    def close(self) -> None:
        super().close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _object_identity(fd: int) -> tuple[int, int]:
    """(device, inode) of an open object; (-1, -1) when it cannot be read."""
    try:
        info = os.fstat(fd)
    except OSError:
        return (-1, -1)
    return (info.st_dev, info.st_ino)


def _open_registered(key: str, identity: tuple[int, int], holders: list[list[int]]) -> int | None:
    """A descriptor of the very object a region was registered with: through its key when the key still
    names it, else through a process that holds it open (its owner unlinked or replaced it); None when gone."""
    name = shm_object_name(key)
    if name is not None:
        try:
            fd = open_shm_object(name, key)
        except TritiumError:
            fd = -1
        if fd >= 0:
            if _object_identity(fd) == tuple(identity):
                return fd
            os.close(fd)
    for pid, held in holders:
        try:
            fd = os.open(f"/proc/{int(pid)}/fd/{int(held)}", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except (OSError, ValueError):
            continue
        try:
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            continue
        if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) == tuple(identity):
            return fd
        os.close(fd)  # the process is gone and its number or descriptor was reused
    return None
