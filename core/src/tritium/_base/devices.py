"""The GPUs this process may use, counted without a driver library (cheap, safe on machines without CUDA)."""

from __future__ import annotations

import os
import re

_DEVICE_NODE = re.compile(r"nvidia\d+")


def visible_gpu_count() -> int:
    """NVIDIA GPUs visible to this process: ``/dev/nvidia<N>`` device nodes, narrowed by
    ``CUDA_VISIBLE_DEVICES`` (``-1`` or empty hides all). Backends use it in ``availability()`` and
    ``supports_gpu()`` the way the kernel uses it for instance placement."""
    try:
        nodes = [name for name in os.listdir("/dev") if _DEVICE_NODE.fullmatch(name)]
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(nodes)
    ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    return min(len(ids), len(nodes))
