"""The plugin module (entry point ``backend_python``): declares the ``python`` backend."""

from __future__ import annotations

import tritium
from tritium_backend_python._backend import BACKEND_NAME, MODEL_FILENAME, PythonBackend


@tritium.hookimpl
def tritium_register_backends() -> list[tritium.BackendSpec]:
    return [
        tritium.BackendSpec(
            name=BACKEND_NAME,
            factory=PythonBackend,
            default_model_filename=MODEL_FILENAME,
            availability=lambda: None,
        )
    ]
