"""Counting the GPUs this process may use, without a driver library."""

from __future__ import annotations

import os

import pytest

import tritium


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "listdir", lambda path: ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert tritium.visible_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert tritium.visible_gpu_count() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert tritium.visible_gpu_count() == 2  # no more than the device nodes
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert tritium.visible_gpu_count() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert tritium.visible_gpu_count() == 0


def test_no_dev_folder_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str) -> list[str]:
        raise PermissionError(path)

    monkeypatch.setattr(os, "listdir", refuse)
    assert tritium.visible_gpu_count() == 0
