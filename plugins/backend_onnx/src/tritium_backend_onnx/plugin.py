"""Tritium plugin ``backend_onnx``: registers the ``onnxruntime`` backend (platform ``onnxruntime_onnx``).

Importing this module imports no ONNX Runtime: the backend loads it when the first ONNX model loads.
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium import Backend, BackendSpec, hookimpl


def create_backend(options: Mapping[str, str]) -> Backend:
    """The backend factory: ``options`` are the ``--backend-config=onnxruntime,<key>=<value>`` settings."""
    from tritium_backend_onnx._backend import OnnxBackend

    return OnnxBackend(options)


def availability() -> str | None:
    """None when ONNX Runtime is installed, else how to install it; imports nothing."""
    from tritium_backend_onnx._backend import availability as check

    return check()


@hookimpl
def tritium_register_backends() -> list[BackendSpec]:
    """Declare the ``onnxruntime`` backend serving ``model.onnx`` files and ``model.onnx/`` folders."""
    return [
        BackendSpec(
            name="onnxruntime",
            factory=create_backend,
            default_model_filename="model.onnx",
            platforms=("onnxruntime_onnx",),
            availability=availability,
        )
    ]
