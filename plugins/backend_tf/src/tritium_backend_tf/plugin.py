"""Tritium plugin ``backend_tf``: registers the ``tensorflow`` backend (platforms ``tensorflow_savedmodel``
and ``tensorflow_graphdef``).

Importing this module imports no TensorFlow: the backend imports it when the first TensorFlow model loads.
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium import Backend, BackendSpec, hookimpl


def create_backend(options: Mapping[str, str]) -> Backend:
    """The backend factory: ``options`` are the ``--backend-config=tensorflow,<key>=<value>`` settings."""
    from tritium_backend_tf._backend import TensorFlowBackend

    return TensorFlowBackend(options)


def availability() -> str | None:
    """None when TensorFlow is installed, else how to install it; imports nothing."""
    from tritium_backend_tf._backend import availability as check

    return check()


@hookimpl
def tritium_register_backends() -> list[BackendSpec]:
    """Declare the ``tensorflow`` backend serving ``model.savedmodel/`` folders and ``model.graphdef`` files."""
    return [
        BackendSpec(
            name="tensorflow",
            factory=create_backend,
            default_model_filename="model.savedmodel",
            platforms=("tensorflow_savedmodel", "tensorflow_graphdef"),
            extra_model_filenames=("model.graphdef",),
            availability=availability,
        )
    ]
