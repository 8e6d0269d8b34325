"""Tritium's Python backend: Triton's ``backend: "python"`` models (``model.py`` with ``TritonPythonModel``).

The plugin module is :mod:`tritium_backend_python.plugin`; model code imports ``triton_python_backend_utils``
(shipped by this distribution as a top-level module). This package's ``__init__`` imports nothing from
``tritium``: stub processes import the package's stub-side modules in environments without Tritium.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PythonBackend"]


def __getattr__(name: str) -> Any:
    if name == "PythonBackend":
        from tritium_backend_python._backend import PythonBackend

        return PythonBackend
    raise AttributeError(name)
