"""System shared memory regions registered by clients (Triton's ``system_shared_memory`` extension).

A region names a POSIX shared memory object (what ``shm_open`` opens: ``/dev/shm/<name>``) and a byte range
of it; frontends read request tensors from it and write response tensors into it. The registry is shared by
every frontend, as in Triton.

Everything about a region comes from the client, so nothing is trusted:

- the key must be a shared memory object name and nothing else (one optional leading ``/``, no other ``/``,
  not ``.`` or ``..``, no NUL, at most ``NAME_MAX`` bytes), opened relative to the shared memory directory
  without following links, and it must be a regular file: no path can reach another file;
- the range is checked against the object's size at registration, and every access is checked again
  against the size the object has *now*, because its owner can shrink it at any time;
- tensors are copied with ``pread``/``pwrite`` on the object's descriptor instead of through a mapping: a
  mapping of an object that its owner truncated kills the process with SIGBUS on access (Python cannot
  catch it), while a short read is an ordinary error. The copy costs one ``memcpy`` per tensor;
- the number of regions is bounded (each holds a descriptor).
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

import attrs

from tritium._base.errors import StatusCode, TritiumError

DISABLED_MESSAGE = (
    "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
)
RESERVED_PREFIX = "triton_python_backend_shm_region_"
SHM_DIRECTORY = "/dev/shm"
NAME_MAX = 255
"""Longest shared memory object name Linux accepts (``NAME_MAX``)."""
MAX_REGIONS = 1024
"""Most regions registered at once: each keeps one file descriptor open."""


def shm_object_name(key: str) -> str | None:
    """The object name ``shm_open(key)`` would open, or None when ``key`` is not a valid object name."""
    name = key[1:] if key.startswith("/") else key
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return None
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return None
    return name


@attrs.define(slots=True)
class _Region:
    name: str
    key: str
    offset: int
    byte_size: int
    fd: int


def open_shm_object(name: str, key: str) -> int:
    """A read-write descriptor of shared memory object ``name``; INVALID_ARG when it cannot be one."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        dir_fd = os.open(SHM_DIRECTORY, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise TritiumError.invalid_arg(f"Unable to open shared memory region: '{key}'") from None
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        raise TritiumError.invalid_arg(f"Unable to open shared memory region: '{key}'") from None
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TritiumError.invalid_arg(f"Unable to open shared memory region: '{key}'")
    except BaseException:
        os.close(fd)
        raise
    return fd


@attrs.define(slots=True)
class SharedMemoryRegistry:
    """Registered system shared memory regions, thread-safe. ``allowed`` False refuses every call."""

    allowed: bool = False
    max_regions: int = MAX_REGIONS
    _regions: dict[str, _Region] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _check_allowed(self) -> None:
        if not self.allowed:
            raise TritiumError(StatusCode.UNSUPPORTED, DISABLED_MESSAGE)

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        """Register ``byte_size`` bytes of shared memory object ``key`` from ``offset`` under ``name``."""
        self._check_allowed()
        for reserved in (name, key.lstrip("/")):
            if reserved.startswith(RESERVED_PREFIX):
                raise TritiumError.invalid_arg(
                    f"cannot register shared memory region '{name}' with key '{key}': the prefix "
                    f"'{RESERVED_PREFIX}' is reserved"
                )
        object_name = shm_object_name(key)
        if object_name is None:
            raise TritiumError.invalid_arg(f"Unable to open shared memory region: '{key}'")
        if offset < 0 or byte_size < 0:
            raise TritiumError.invalid_arg(
                f"failed to register shared memory region '{name}': offset and byte_size must be >= 0"
            )
        with self._lock:
            if name in self._regions:
                raise TritiumError.already_exists(f"shared memory region '{name}' already in manager")
            if len(self._regions) >= self.max_regions:
                raise TritiumError.invalid_arg(
                    f"failed to register shared memory region '{name}': {self.max_regions} regions are "
                    "registered already (unregister some first)"
                )
            fd = open_shm_object(object_name, key)
            try:
                size = os.fstat(fd).st_size
            except OSError:
                os.close(fd)
                raise TritiumError.invalid_arg(f"Unable to open shared memory region: '{key}'") from None
            if byte_size == 0 or offset + byte_size > size:
                os.close(fd)
                raise TritiumError.invalid_arg(f"failed to register shared memory region '{name}': invalid args")
            self._regions[name] = _Region(name, key, offset, byte_size, fd)

    def _adopt(self, name: str, key: str, offset: int, byte_size: int, fd: int) -> bool:
        """Register an object descriptor opened by the caller (who checked that it is the object the region
        names); it is owned by the registry from here on. False, and the descriptor closed, when the range no
        longer fits the object or the name is taken."""
        with self._lock:
            try:
                size = os.fstat(fd).st_size
            except OSError:
                size = -1
            if name in self._regions or byte_size == 0 or offset < 0 or offset + byte_size > size:
                os.close(fd)
                return False
            self._regions[name] = _Region(name, key, offset, byte_size, fd)
            return True

    def _descriptor(self, name: str) -> int:
        """The descriptor region ``name`` holds (-1 when there is no such region)."""
        with self._lock:
            region = self._regions.get(name)
            return region.fd if region is not None else -1

    def unregister(self, name: str | None = None) -> None:
        """Unregister ``name``, or every region when None (unknown names are not an error, as in Triton)."""
        self._check_allowed()
        with self._lock:
            names = list(self._regions) if name is None else [name]
            for n in names:
                region = self._regions.pop(n, None)
                if region is not None:
                    os.close(region.fd)

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
        """The region and the absolute file position of ``offset``; call with the lock held."""
        region = self._regions.get(name)
        if region is None:
            raise TritiumError.not_found(f"Unable to find shared memory region: '{name}'")
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise TritiumError.invalid_arg(
                f"Invalid offset + byte size for shared memory region: '{name}'"
            )
        return region, region.offset + offset

    @staticmethod
    def _shrunk(name: str) -> TritiumError:
        return TritiumError.invalid_arg(
            f"shared memory region '{name}' is smaller than when it was registered"
        )

    def read(self, name: str, offset: int, byte_size: int) -> memoryview:
        """A copy of ``byte_size`` bytes at ``offset`` within region ``name`` (INVALID_ARG out of range, or
        when the object no longer holds that range)."""
        self._check_allowed()
        with self._lock:
            region, start = self._slice(name, offset, byte_size)
            buffer = bytearray(byte_size)
            view = memoryview(buffer)
            done = 0
            try:
                while done < byte_size:
                    got = os.preadv(region.fd, [view[done:]], start + done)
                    if got <= 0:
                        raise self._shrunk(name)
                    done += got
            except OSError:
                raise self._shrunk(name) from None
            return view

    def write(self, name: str, offset: int, data: bytes | memoryview, byte_size: int | None = None) -> None:
        """Copy ``data`` into region ``name`` at ``offset``; it must fit in ``byte_size`` (default: its
        length), in the region, and in the object as it is now (it is never grown)."""
        self._check_allowed()
        size = len(data) if byte_size is None else byte_size
        if len(data) > size:
            raise TritiumError.invalid_arg(
                f"shared memory size specified with the request for output is {size} bytes, "
                f"but the output requires {len(data)} bytes"
            )
        with self._lock:
            region, start = self._slice(name, offset, size)
            view = memoryview(data).cast("B")
            try:
                if os.fstat(region.fd).st_size < start + len(view):
                    raise self._shrunk(name)
                done = 0
                while done < len(view):
                    done += os.pwrite(region.fd, view[done:], start + done)
            except OSError:
                raise self._shrunk(name) from None

    def close(self) -> None:
        """Close every region (server shutdown)."""
        with self._lock:
            for region in self._regions.values():
                os.close(region.fd)
            self._regions.clear()
