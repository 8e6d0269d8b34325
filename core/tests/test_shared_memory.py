"""The system shared memory registry shared by every frontend."""

from __future__ import annotations

from collections.abc import Iterator
from multiprocessing import shared_memory

import pytest

from tritium import SharedMemoryRegistry, StatusCode, TritiumError


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
        ("/does-not-exist-tritium", 0, 8, StatusCode.INTERNAL),
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
