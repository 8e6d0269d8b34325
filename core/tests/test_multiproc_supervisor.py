"""How many workers ``--workers 0`` means: the usable cores (CPU affinity, bounded by a cgroup quota)."""

from __future__ import annotations

import os

import pytest

from tritium._multiproc import supervisor


def test_usable_cores_follows_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(supervisor, "_cgroup_quota", lambda: None)
    assert supervisor.usable_cores() == 6


@pytest.mark.parametrize(("quota", "expected"), [(2.0, 2), (1.5, 2), (0.25, 1), (16.0, 6)])
def test_usable_cores_bounded_by_cgroup_quota(monkeypatch: pytest.MonkeyPatch, quota: float, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(supervisor, "_cgroup_quota", lambda: quota)
    assert supervisor.usable_cores() == expected


def test_usable_cores_on_this_machine_is_positive() -> None:
    assert 1 <= supervisor.usable_cores() <= (os.cpu_count() or 1)
