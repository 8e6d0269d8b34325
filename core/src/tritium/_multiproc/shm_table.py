"""Client shared memory regions registered through any worker, usable from every worker.

Frontends read inputs from and write outputs to client regions themselves, in their worker, so every worker
needs every region open. The regions' table (name, key, offset, size) lives in one file of the server's run
directory, changed under an exclusive ``flock`` and stamped with a generation number; each worker's
:class:`SharedRegistry` re-reads the table whenever the generation moved before it answers, and opens or
closes regions to match. A registration is therefore visible to every worker as soon as the call that made it
returns, and an unregistered region is refused by all of them from then on.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from tritium._runtime.shm import SharedMemoryRegistry

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

    def _write_rows(self) -> None:
        rows = [[r.name, r.key, r.offset, r.byte_size] for r in self._regions.values()]
        body = json.dumps(rows).encode()
        generation = self._read_generation() + 1
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
        wanted = {row[0]: tuple(row) for row in rows}
        for name, region in list(self._regions.items()):
            if wanted.get(name) != (region.name, region.key, region.offset, region.byte_size):
                super().unregister(name)
        for name, (_, key, offset, byte_size) in wanted.items():
            if name not in self._regions:
                try:
                    super().register(name, key, offset, byte_size)
                except Exception:
                    # The object vanished since it was registered: requests naming it fail as they would
                    # in the worker that registered it once it is gone.
                    pass

    # ------------------------------------------------------------------------ registry operations
    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if self._fd < 0:
            super().register(name, key, offset, byte_size)
            return
        self._check_allowed()
        with self._locked():
            self._apply(self._read_rows())
            super().register(name, key, offset, byte_size)
            self._write_rows()

    def unregister(self, name: str | None = None) -> None:
        if self._fd < 0:
            super().unregister(name)
            return
        self._check_allowed()
        with self._locked():
            self._apply(self._read_rows())
            super().unregister(name)
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
