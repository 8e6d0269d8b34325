"""Client shared memory regions registered through one worker are usable, and unregistered, in every worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritium import StatusCode, TritiumError
from tritium._multiproc.shm_table import SharedRegistry, create_table


@pytest.fixture
def shm_key() -> Iterator[str]:
    key = f"/tritium-test-{uuid.uuid4().hex}"
    fd = os.open(f"/dev/shm{key}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 4096)
    os.close(fd)
    yield key
    os.unlink(f"/dev/shm{key}")


def two_workers(tmp_path: Path) -> tuple[SharedRegistry, SharedRegistry]:
    table = create_table(tmp_path)
    return SharedRegistry(allowed=True, table=table), SharedRegistry(allowed=True, table=table)


def test_region_registered_in_one_worker_is_read_and_written_in_another(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    assert second.status() == [{"name": "r", "key": shm_key, "offset": 0, "byte_size": 1024}]
    second.write("r", 8, b"hello")
    assert bytes(first.read("r", 8, 5)) == b"hello"


def test_unregister_in_one_worker_refuses_in_every_worker(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    assert second.status("r")
    second.unregister("r")
    for worker in (first, second):
        with pytest.raises(TritiumError) as caught:
            worker.read("r", 0, 4)
        assert caught.value.code is StatusCode.NOT_FOUND
        assert worker.status() == []


def test_names_are_unique_across_workers(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    with pytest.raises(TritiumError) as caught:
        second.register("r", shm_key, 0, 16)
    assert caught.value.code is StatusCode.ALREADY_EXISTS


def test_re_registration_under_the_same_name_is_seen_with_its_new_range(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    assert second.status("r")[0]["byte_size"] == 1024
    first.unregister("r")
    first.register("r", shm_key, 512, 16)
    assert second.status("r") == [{"name": "r", "key": shm_key, "offset": 512, "byte_size": 16}]
    with pytest.raises(TritiumError):
        second.read("r", 0, 32)  # beyond the new range


def test_unregister_all_and_a_worker_started_later(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("a", shm_key, 0, 16)
    first.register("b", shm_key, 16, 16)
    late = SharedRegistry(allowed=True, table=tmp_path / "shm-regions.json")
    assert {r["name"] for r in late.status()} == {"a", "b"}
    second.unregister()
    assert first.status() == [] and late.status() == []


def test_bad_registrations_leave_the_table_unchanged(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    for key, offset, size in (("../../etc/passwd", 0, 4), (shm_key, 0, 1 << 20), ("/no-such-object-xyz", 0, 4)):
        with pytest.raises(TritiumError):
            first.register("r", key, offset, size)
    assert second.status() == [] and first.status() == []


def test_disabled_registry_refuses(tmp_path: Path, shm_key: str) -> None:
    registry = SharedRegistry(allowed=False, table=create_table(tmp_path))
    with pytest.raises(TritiumError) as caught:
        registry.register("r", shm_key, 0, 16)
    assert caught.value.code is StatusCode.UNSUPPORTED


def _unlink(key: str) -> None:
    os.unlink(f"/dev/shm{key}")


def _recreate(key: str, content: bytes) -> None:
    fd = os.open(f"/dev/shm{key}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 4096)
    os.pwrite(fd, content, 0)
    os.close(fd)


def test_a_region_unlinked_after_registering_is_usable_in_every_worker(tmp_path: Path, shm_key: str) -> None:
    """One process keeps an unlinked object open and serves it: so does every worker (through a holder)."""
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    first.write("r", 0, b"before unlink")
    _unlink(shm_key)
    try:
        assert bytes(second.read("r", 0, 13)) == b"before unlink"
        second.write("r", 0, b"written after")
        assert bytes(first.read("r", 0, 13)) == b"written after"
    finally:
        _recreate(shm_key, b"")  # for the fixture's cleanup


def test_a_key_that_names_another_object_now_still_reaches_the_registered_one(tmp_path: Path, shm_key: str) -> None:
    """The client replaced the object under the same key: the region is the object that was registered (as in
    one process), never the new one."""
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    first.write("r", 0, b"registered")
    _unlink(shm_key)
    _recreate(shm_key, b"impostor!!")
    assert bytes(second.read("r", 0, 10)) == b"registered"


def test_an_unlinked_region_outlives_the_worker_that_registered_it(tmp_path: Path, shm_key: str) -> None:
    first, second = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    first.write("r", 0, b"kept alive")
    assert second.status("r")  # second opened it: a holder now
    _unlink(shm_key)
    first.close()  # the registering worker is gone (its descriptors with it)
    try:
        late = SharedRegistry(allowed=True, table=tmp_path / "shm-regions.json")
        assert bytes(late.read("r", 0, 10)) == b"kept alive"
    finally:
        _recreate(shm_key, b"")


def test_an_object_nobody_holds_any_more_is_not_found(tmp_path: Path, shm_key: str) -> None:
    first, _ = two_workers(tmp_path)
    first.register("r", shm_key, 0, 1024)
    _unlink(shm_key)
    first.close()
    try:
        late = SharedRegistry(allowed=True, table=tmp_path / "shm-regions.json")
        with pytest.raises(TritiumError) as caught:
            late.read("r", 0, 4)
        assert caught.value.code is StatusCode.NOT_FOUND
    finally:
        _recreate(shm_key, b"")
