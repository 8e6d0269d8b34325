"""The system shared memory registry shared by every frontend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium import SharedMemoryRegistry, StatusCode, TritiumError
from tritium._runtime.shm import shm_object_name


@pytest.fixture
def segment() -> Iterator[shared_memory.SharedMemory]:
    shm = shared_memory.SharedMemory(create=True, size=64)
    yield shm
    shm.close()
    shm.unlink()


def test_register_read_write_status_unregister(segment: shared_memory.SharedMemory) -> None:
    registry = SharedMemoryRegistry(allowed=True)
    registry.register("r", "/" + segment.name, 8, 32)
    assert registry.status() == [{"name": "r", "key": "/" + segment.name, "offset": 8, "byte_size": 32}]
    segment.buf[8:12] = b"abcd"
    assert bytes(registry.read("r", 0, 4)) == b"abcd"
    registry.write("r", 4, b"wxyz")
    assert bytes(segment.buf[12:16]) == b"wxyz"
    with pytest.raises(TritiumError) as info:
        registry.register("r", "/" + segment.name, 0, 8)
    assert info.value.code is StatusCode.ALREADY_EXISTS
    with pytest.raises(TritiumError) as info:
        registry.read("r", 30, 4)
    assert info.value.code is StatusCode.INVALID_ARG
    registry.unregister("r")
    registry.unregister("r")  # unknown names are not an error
    assert registry.status() == []
    with pytest.raises(TritiumError) as info:
        registry.read("r", 0, 1)
    assert info.value.code is StatusCode.NOT_FOUND


def test_disabled_registry_refuses_changes_and_lists_nothing(segment: shared_memory.SharedMemory) -> None:
    registry = SharedMemoryRegistry(allowed=False)
    with pytest.raises(TritiumError, match="--allow-client-shm=true") as info:
        registry.register("r", "/" + segment.name, 0, 8)
    assert info.value.code is StatusCode.UNSUPPORTED
    assert registry.status() == []


@pytest.mark.parametrize(
    ("key", "offset", "size", "code"),
    [
        ("/does-not-exist-tritium", 0, 8, StatusCode.INVALID_ARG),
        (None, 60, 8, StatusCode.INVALID_ARG),
        ("/triton_python_backend_shm_region_x", 0, 8, StatusCode.INVALID_ARG),
        ("///", 0, 8, StatusCode.INVALID_ARG),
    ],
)
def test_bad_registrations(segment: shared_memory.SharedMemory, key: str | None, offset: int, size: int,
                           code: StatusCode) -> None:
    registry = SharedMemoryRegistry(allowed=True)
    with pytest.raises(TritiumError) as info:
        registry.register("r", key or "/" + segment.name, offset, size)
    assert info.value.code is code
    assert registry.status() == []


# ------------------------------------------------------------------------------------ hostile keys


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/../../etc/passwd",
        "/dev/zero",
        "..%2F..%2Fetc%2Fpasswd",
        "..",
        "/..",
        ".",
        "a/b",
        "/a/",
        "x\0y",
        "/" + "a" * 256,
        "",
        "/",
    ],
)
def test_keys_that_are_not_shm_object_names_are_refused(key: str) -> None:
    registry = SharedMemoryRegistry(allowed=True)
    with pytest.raises(TritiumError, match="Unable to open shared memory region") as info:
        registry.register("r", key, 0, 8)
    assert info.value.code is StatusCode.INVALID_ARG
    assert registry.status() == []


def test_a_symlink_in_the_shm_directory_is_not_followed() -> None:
    with tempfile.NamedTemporaryFile() as target:
        target.write(b"secret" * 10)
        target.flush()
        link = Path("/dev/shm") / f"tritium-test-link-{os.getpid()}"
        link.symlink_to(target.name)
        try:
            registry = SharedMemoryRegistry(allowed=True)
            with pytest.raises(TritiumError, match="Unable to open shared memory region") as info:
                registry.register("r", "/" + link.name, 0, 8)
            assert info.value.code is StatusCode.INVALID_ARG
        finally:
            link.unlink()


def test_a_directory_in_the_shm_directory_is_refused() -> None:
    folder = Path("/dev/shm") / f"tritium-test-dir-{os.getpid()}"
    folder.mkdir()
    try:
        with pytest.raises(TritiumError) as info:
            SharedMemoryRegistry(allowed=True).register("r", "/" + folder.name, 0, 8)
        assert info.value.code is StatusCode.INVALID_ARG
    finally:
        folder.rmdir()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_only_names_shm_open_accepts_are_object_names(key: str) -> None:
    name = shm_object_name(key)
    if name is None:
        return
    assert "/" not in name and "\0" not in name and name not in ("", ".", "..")
    assert key in (name, "/" + name)
    assert os.path.dirname(os.path.normpath(os.path.join("/dev/shm", name))) == "/dev/shm"


# ------------------------------------------------------------------------------- owner changes it
def test_a_region_shrunk_by_its_owner_answers_an_error_not_a_crash(segment: shared_memory.SharedMemory) -> None:
    registry = SharedMemoryRegistry(allowed=True)
    registry.register("r", "/" + segment.name, 0, 64)
    fd = os.open("/dev/shm/" + segment.name, os.O_RDWR)
    try:
        os.ftruncate(fd, 8)
        with pytest.raises(TritiumError, match="smaller than when it was registered") as info:
            registry.read("r", 0, 64)
        assert info.value.code is StatusCode.INVALID_ARG
        with pytest.raises(TritiumError, match="smaller than when it was registered"):
            registry.write("r", 32, b"x" * 16)
        assert os.fstat(fd).st_size == 8  # never grown by a write
        assert bytes(registry.read("r", 0, 8)) == bytes(segment.buf[:8])
    finally:
        os.ftruncate(fd, 64)
        os.close(fd)


def test_reads_are_copies_that_outlive_unregister(segment: shared_memory.SharedMemory) -> None:
    registry = SharedMemoryRegistry(allowed=True)
    registry.register("r", "/" + segment.name, 0, 16)
    segment.buf[:4] = b"abcd"
    view = registry.read("r", 0, 4)
    registry.unregister("r")
    segment.buf[:4] = b"zzzz"
    assert bytes(view) == b"abcd"


def test_the_number_of_regions_is_bounded(segment: shared_memory.SharedMemory) -> None:
    registry = SharedMemoryRegistry(allowed=True, max_regions=3)
    for i in range(3):
        registry.register(f"r{i}", "/" + segment.name, 0, 8)
    with pytest.raises(TritiumError, match="3 regions are registered already") as info:
        registry.register("r3", "/" + segment.name, 0, 8)
    assert info.value.code is StatusCode.INVALID_ARG
    registry.unregister("r0")
    registry.register("r3", "/" + segment.name, 0, 8)
    registry.close()
    assert registry.status() == []


def test_unregister_closes_the_descriptor(segment: shared_memory.SharedMemory) -> None:
    before = len(os.listdir("/proc/self/fd"))
    registry = SharedMemoryRegistry(allowed=True)
    for i in range(20):
        registry.register(f"r{i}", "/" + segment.name, 0, 8)
    registry.unregister()
    assert len(os.listdir("/proc/self/fd")) == before
