"""System shared memory regions registered by clients (Triton's ``system_shared_memory`` extension).

A region maps a POSIX shared memory object (``/dev/shm/<key>``) at an offset; frontends read request tensors
from it and write response tensors into it. The registry is shared by every frontend, as in Triton.
"""

from __future__ import annotations

import mmap
import os
import threading
from typing import Any

import attrs

from tritium._errors import StatusCode, TritiumError

DISABLED_MESSAGE = (
    "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
)
RESERVED_PREFIX = "triton_python_backend_shm_region_"


@attrs.define(slots=True)
class _Region:
    name: str
    key: str
    offset: int
    byte_size: int
    mapping: mmap.mmap


@attrs.define(slots=True)
class SharedMemoryRegistry:
    """Registered system shared memory regions, thread-safe. ``allowed`` False refuses every call."""

    allowed: bool = False
    _regions: dict[str, _Region] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _check_allowed(self) -> None:
        if not self.allowed:
            raise TritiumError(StatusCode.UNSUPPORTED, DISABLED_MESSAGE)

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        """Map ``byte_size`` bytes of shared memory object ``key`` from ``offset`` under ``name``."""
        self._check_allowed()
        for reserved in (name, key.lstrip("/")):
            if reserved.startswith(RESERVED_PREFIX):
                raise TritiumError.invalid_arg(
                    f"cannot register shared memory region '{name}' with key '{key}': the prefix "
                    f"'{RESERVED_PREFIX}' is reserved"
                )
        if not key.strip("/"):
            raise TritiumError.invalid_arg(f"invalid shared memory key '{key}' for region '{name}'")
        if offset < 0 or byte_size < 0:
            raise TritiumError.invalid_arg(
                f"failed to register shared memory region '{name}': offset and byte_size must be >= 0"
            )
        with self._lock:
            if name in self._regions:
                raise TritiumError.already_exists(f"shared memory region '{name}' already in manager")
            path = "/dev/shm/" + key.lstrip("/")
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                raise TritiumError.internal(f"Unable to open shared memory region: '{key}'") from None
            try:
                size = os.fstat(fd).st_size
                if offset + byte_size > size or byte_size == 0:
                    raise TritiumError.invalid_arg(
                        f"failed to register shared memory region '{name}': invalid args"
                    )
                mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
            self._regions[name] = _Region(name, key, offset, byte_size, mapping)

    def unregister(self, name: str | None = None) -> None:
        """Unregister ``name``, or every region when None (unknown names are not an error, as in Triton)."""
        self._check_allowed()
        with self._lock:
            names = list(self._regions) if name is None else [name]
            for n in names:
                region = self._regions.pop(n, None)
                if region is not None:
                    try:
                        region.mapping.close()
                    except BufferError:
                        pass  # a view is still alive; the mapping closes when it is collected

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        """``[{"name","key","offset","byte_size"}]`` for one region or all (none while disabled)."""
        with self._lock:
            if name is not None:
                region = self._regions.get(name)
                if region is None:
                    raise TritiumError.not_found(f"Unable to find system shared memory region: '{name}'")
                regions = [region]
            else:
                regions = list(self._regions.values())
            return [
                {"name": r.name, "key": r.key, "offset": r.offset, "byte_size": r.byte_size} for r in regions
            ]

    def _slice(self, name: str, offset: int, byte_size: int) -> tuple[_Region, int]:
        self._check_allowed()
        region = self._regions.get(name)
        if region is None:
            raise TritiumError.not_found(f"Unable to find shared memory region: '{name}'")
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise TritiumError.invalid_arg(
                f"Invalid offset + byte size for shared memory region: '{name}'"
            )
        return region, region.offset + offset

    def read(self, name: str, offset: int, byte_size: int) -> memoryview:
        """A view of ``byte_size`` bytes at ``offset`` within region ``name`` (INVALID_ARG out of range)."""
        region, start = self._slice(name, offset, byte_size)
        return memoryview(region.mapping)[start : start + byte_size]

    def write(self, name: str, offset: int, data: bytes | memoryview, byte_size: int | None = None) -> None:
        """Copy ``data`` into region ``name`` at ``offset``; it must fit in ``byte_size`` (default: its
        length) and in the region."""
        size = len(data) if byte_size is None else byte_size
        if len(data) > size:
            raise TritiumError.invalid_arg(
                f"shared memory size specified with the request for output is {size} bytes, "
                f"but the output requires {len(data)} bytes"
            )
        region, start = self._slice(name, offset, size)
        region.mapping[start : start + len(data)] = bytes(data) if isinstance(data, memoryview) else data

    def close(self) -> None:
        """Unmap every region (server shutdown)."""
        with self._lock:
            for region in self._regions.values():
                try:
                    region.mapping.close()
                except BufferError:
                    pass
            self._regions.clear()
