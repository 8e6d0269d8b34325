"""Tritium's TensorFlow backend: Triton's ``tensorflow`` backend for SavedModels and GraphDefs.

The plugin entry point is :mod:`tritium_backend_tf.plugin`; :class:`TensorFlowBackend` is the backend object.
Neither imports TensorFlow until a model loads (install it with ``pip install 'tritium-backend-tf[cpu]'`` or
``[gpu]``).
"""

from tritium_backend_tf._backend import (
    BACKEND_NAME,
    GRAPHDEF_FILENAME,
    GRAPHDEF_PLATFORM,
    SAVEDMODEL_FILENAME,
    SAVEDMODEL_PLATFORM,
    TensorFlowBackend,
)

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAME",
    "GRAPHDEF_FILENAME",
    "GRAPHDEF_PLATFORM",
    "SAVEDMODEL_FILENAME",
    "SAVEDMODEL_PLATFORM",
    "TensorFlowBackend",
    "__version__",
]
