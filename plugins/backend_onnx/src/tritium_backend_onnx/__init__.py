"""Tritium's ONNX Runtime backend: Triton's ``onnxruntime`` backend for ``model.onnx`` models.

The plugin entry point is :mod:`tritium_backend_onnx.plugin`; :class:`OnnxBackend` is the backend object.
Neither imports ONNX Runtime until a model loads (install it with ``pip install 'tritium-backend-onnx[cpu]'``
or ``[gpu]``).
"""

from tritium_backend_onnx._backend import BACKEND_NAME, DEFAULT_MODEL_FILENAME, PLATFORM, OnnxBackend

__version__ = "0.1.0"

__all__ = ["BACKEND_NAME", "DEFAULT_MODEL_FILENAME", "PLATFORM", "OnnxBackend", "__version__"]
