"""Whether the TensorRT backend can run here, checked without importing TensorRT or CUDA.

The backend needs three things: the ``tensorrt`` package (TensorRT 10), a Python binding of the CUDA runtime
(``cuda-python``) for device memory and streams, and an NVIDIA GPU. Each missing one is named, with how to
get it, so that ``tritium plugins``, the startup log and a model's load error say exactly what to do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from tritium import visible_gpu_count

INSTALL_TENSORRT = "install tensorrt: pip install 'tritium-backend-tensorrt[gpu]' (TensorRT 10 and cuda-python)"
INSTALL_CUDA_PYTHON = "install the CUDA runtime binding: pip install 'cuda-python>=12'"
NEEDS_GPU = "needs a CUDA GPU: no NVIDIA GPU is visible to this process (/dev/nvidia*, CUDA_VISIBLE_DEVICES)"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cuda_binding_installed() -> bool:
    """``cuda-python`` is installed (``cuda.bindings`` since 12.6, ``cuda.cudart`` before)."""
    return _installed("cuda.bindings") or _installed("cuda.cudart")


def availability(
    *,
    installed: Callable[[str], bool] = _installed,
    binding_installed: Callable[[], bool] = cuda_binding_installed,
    gpu_count: Callable[[], int] = visible_gpu_count,
) -> str | None:
    """None when TensorRT can run here, else every reason it cannot, joined by '; '."""
    reasons = []
    if not installed("tensorrt"):
        reasons.append(INSTALL_TENSORRT)
    elif not binding_installed():
        reasons.append(INSTALL_CUDA_PYTHON)
    if gpu_count() <= 0:
        reasons.append(NEEDS_GPU)
    return "; ".join(reasons) or None
