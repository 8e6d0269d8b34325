"""The shared-memory ring between a worker and the executor: allocation, release in any order, reuse."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium._multiproc.arena import ALIGN, HEADER, ArenaReader, ArenaWriter


def pair(size: int) -> tuple[ArenaWriter, ArenaReader]:
    writer = ArenaWriter(size)
    return writer, ArenaReader(os.dup(writer.fd), size)


def test_reader_sees_written_bytes_without_copy_and_release_follows_last_view() -> None:
    writer, reader = pair(1 << 16)
    data = np.arange(12, dtype=np.float32)
    offset = writer.write(data)
    assert offset is not None and offset % 16 == 0
    block = reader.view(offset, data.nbytes)
    derived = block.view(np.float32).reshape(3, 4)[1:]
    del block
    assert reader.live_blocks == 1  # the derived view keeps the block
    np.testing.assert_array_equal(derived.reshape(-1), data[4:])
    del derived
    assert reader.live_blocks == 0
    assert writer.alloc(1) is not None
    assert writer.used == ALIGN  # the released block was reclaimed: only the new one is held


def test_full_ring_refuses_then_reuses_after_release() -> None:
    writer, reader = pair(4 * ALIGN)
    offsets = [writer.alloc(ALIGN - HEADER) for _ in range(4)]
    assert None not in offsets
    assert writer.alloc(1) is None  # full
    reader.release(offsets[1])  # released out of order: the tail (offsets[0]) still holds
    assert writer.alloc(1) is None
    reader.release(offsets[0])
    assert writer.alloc(ALIGN - HEADER) is not None  # two blocks back, one taken
    assert writer.alloc(ALIGN - HEADER) is not None
    assert writer.alloc(1) is None


def test_too_large_for_the_ring_is_refused() -> None:
    writer, _ = pair(4 * ALIGN)
    assert writer.alloc(4 * ALIGN) is None
    assert writer.write(np.zeros(1000, dtype=np.uint8)) is None


def test_view_of_a_block_not_in_use_is_refused() -> None:
    writer, reader = pair(1 << 12)
    with pytest.raises(ValueError):
        reader.view(HEADER, 8)
    offset = writer.alloc(8)
    assert offset is not None
    reader.release(offset)
    with pytest.raises(ValueError):
        reader.view(offset, 8)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        ArenaWriter(100)


def _check_disjoint(offset: int, nbytes: int, live: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    for other, (other_payload, _) in live.items():
        assert offset + nbytes <= other - HEADER or other + len(other_payload) <= offset - HEADER


def _check_contents(live: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    for payload, view in live.values():
        np.testing.assert_array_equal(view, payload)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 900), min_size=1, max_size=80), st.integers(0, 2**32))
def test_blocks_never_overlap_and_contents_survive(sizes: list[int], seed: int) -> None:
    """Write blocks, keep a view of each (as a request does), drop a random half of the views whenever the
    ring is full: live blocks never overlap, their bytes stay what was written, and once every view is gone the
    whole ring is free again."""
    size = 8 * 1024
    writer, reader = pair(size)
    rng = np.random.default_rng(seed)
    live: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for nbytes in sizes:
        payload = rng.integers(0, 256, nbytes, dtype=np.uint8)
        offset = writer.write(payload)
        if offset is None:
            for key in list(rng.permutation(list(live)))[: max(1, len(live) // 2)]:
                del live[int(key)]  # the last view of the block dies: released
            continue
        assert offset + nbytes <= size
        _check_disjoint(offset, nbytes, live)
        live[offset] = (payload, reader.view(offset, nbytes))
        _check_contents(live)
    live.clear()
    assert reader.live_blocks == 0
    assert writer.alloc(size - HEADER) is not None  # everything reclaimed: the whole ring in one block
