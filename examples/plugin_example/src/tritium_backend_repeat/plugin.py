"""The plugin module: what the entry point ``backend_repeat`` (group ``tritium.plugins``) names.

It only declares the backend. Keep a plugin module this cheap: the server imports every installed plugin at
startup, and ``tritium plugins`` imports them all just to list them. A backend wrapping a framework imports
that framework inside the backend (in ``create_instance``), never here.
"""

from __future__ import annotations

import tritium
from tritium_backend_repeat.backend import BACKEND_NAME, MODEL_FILENAME, RepeatBackend


@tritium.hookimpl
def tritium_register_backends() -> list[tritium.BackendSpec]:
    """Declare the ``repeat`` backend: models with ``backend: "repeat"`` or a ``model.repeat`` file."""
    return [
        tritium.BackendSpec(
            name=BACKEND_NAME,
            factory=RepeatBackend,
            default_model_filename=MODEL_FILENAME,
            availability=lambda: None,  # nothing to install; a framework backend checks find_spec here
        )
    ]
