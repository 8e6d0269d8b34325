"""Tritium plugin ``backend_torch``: registers the ``pytorch`` backend (platforms ``pytorch_libtorch`` and
``torch_aoti``, files ``model.pt`` and ``model.pt2``).

Importing this module imports no PyTorch: the backend loads it when the first PyTorch model loads.
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium import Backend, BackendSpec, hookimpl


def create_backend(options: Mapping[str, str]) -> Backend:
    """The backend factory: ``options`` are the ``--backend-config=pytorch,<key>=<value>`` settings."""
    from tritium_backend_torch._backend import TorchBackend

    return TorchBackend(options)


def availability() -> str | None:
    """None when PyTorch is installed, else how to install it; imports nothing."""
    from tritium_backend_torch._backend import availability as check

    return check()


@hookimpl
def tritium_register_backends() -> list[BackendSpec]:
    """Declare the ``pytorch`` backend serving TorchScript ``model.pt`` and AOTInductor ``model.pt2`` files."""
    from tritium_backend_torch._backend import AOTI_MODEL_FILENAME, BACKEND_NAME, DEFAULT_MODEL_FILENAME, PLATFORMS

    return [
        BackendSpec(
            name=BACKEND_NAME,
            factory=create_backend,
            default_model_filename=DEFAULT_MODEL_FILENAME,
            platforms=PLATFORMS,
            extra_model_filenames=(AOTI_MODEL_FILENAME,),
            availability=availability,
        )
    ]
