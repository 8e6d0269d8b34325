"""Tritium plugin ``backend_tensorrt``: registers the ``tensorrt`` backend (platform ``tensorrt_plan``).

Importing this module imports neither TensorRT nor CUDA; ``availability`` checks for them (and for a GPU)
without importing them.
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium import Backend, BackendSpec, hookimpl


def create_backend(options: Mapping[str, str]) -> Backend:
    """The backend factory: ``options`` are the ``--backend-config=tensorrt,<key>=<value>`` settings."""
    from tritium_backend_tensorrt._backend import TensorRTBackend

    return TensorRTBackend(options)


def availability() -> str | None:
    """None when TensorRT, cuda-python and a GPU are all here, else what is missing."""
    from tritium_backend_tensorrt._availability import availability as check

    return check()


@hookimpl
def tritium_register_backends() -> list[BackendSpec]:
    """Declare the ``tensorrt`` backend serving ``model.plan`` files."""
    return [
        BackendSpec(
            name="tensorrt",
            factory=create_backend,
            default_model_filename="model.plan",
            platforms=("tensorrt_plan",),
            availability=availability,
        )
    ]
