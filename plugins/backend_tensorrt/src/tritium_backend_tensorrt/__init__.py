"""Tritium's TensorRT backend: Triton's ``tensorrt`` backend (platform ``tensorrt_plan``, ``model.plan``).

Importing this package imports neither TensorRT nor any CUDA binding; they load with the first model.
"""

from tritium_backend_tensorrt._backend import TensorRTBackend

__all__ = ["TensorRTBackend"]
