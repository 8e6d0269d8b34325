"""Tritium's PyTorch backend: Triton's ``pytorch`` backend for TorchScript and AOTInductor models.

Importing the package imports no PyTorch.
"""

from tritium_backend_torch._backend import TorchBackend

__all__ = ["TorchBackend"]
