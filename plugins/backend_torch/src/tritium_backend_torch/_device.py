"""Where an instance runs: a ``torch.device`` and, on a GPU, the CUDA stream the instance owns.

The kernel's soft placement decides the kind: an instance placed on ``"GPU"`` runs on ``cuda:<device_id>``
with a stream of its own (inputs are copied to the device on that stream, the model runs on it, outputs
are copied back once at the end); an instance placed on ``"CPU"`` runs on the CPU. A GPU placement in a
process whose PyTorch has no CUDA (a CPU build) cannot be served and fails to load with UNAVAILABLE.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs

from tritium import InstancePlacement, TritiumError


@attrs.define(frozen=True, slots=True)
class Device:
    """One instance's device and stream (``stream`` is None on the CPU)."""

    torch_device: Any
    stream: Any = None

    @property
    def is_gpu(self) -> bool:
        return bool(self.torch_device.type == "cuda")

    @classmethod
    def for_placement(cls, placement: InstancePlacement, model_name: str) -> Device:
        """The device of ``placement``; a new CUDA stream for a GPU instance."""
        import torch

        if placement.kind != "GPU":
            return cls(torch.device("cpu"))
        if not torch.cuda.is_available():
            raise TritiumError.unavailable(
                f"instance '{placement.name}' of model '{model_name}' is placed on GPU {placement.device_id}, "
                f"but this PyTorch ({torch.__version__}) has no CUDA device; install a CUDA build "
                "(pip install 'tritium-backend-torch[gpu]') or use KIND_CPU"
            )
        count = torch.cuda.device_count()
        if not 0 <= placement.device_id < count:
            raise TritiumError.unavailable(
                f"instance '{placement.name}' of model '{model_name}' is placed on GPU {placement.device_id}, "
                f"but PyTorch sees {count} CUDA device(s)"
            )
        device = torch.device("cuda", placement.device_id)
        return cls(device, torch.cuda.Stream(device=device))  # type: ignore[no-untyped-call]

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Run the enclosed work on this instance's stream (nothing to do on the CPU)."""
        if self.stream is None:
            yield
            return
        import torch

        with torch.cuda.device(self.torch_device), torch.cuda.stream(self.stream):
            yield

    def synchronize(self) -> None:
        """Wait for the work queued on this instance's stream (outputs copied to the host are then valid)."""
        if self.stream is not None:
            self.stream.synchronize()

    def empty_cache(self) -> None:
        """Give cached CUDA memory back to the driver (``ENABLE_CACHE_CLEANING``); no-op on the CPU."""
        if self.is_gpu:
            import torch

            torch.cuda.empty_cache()
