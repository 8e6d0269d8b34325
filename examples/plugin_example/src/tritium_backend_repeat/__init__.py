"""Example Tritium backend ``repeat``: Triton's ``repeat_int32`` QA model as an out-of-tree plugin.

The plugin module (the entry point) is :mod:`tritium_backend_repeat.plugin`; the backend itself is in
:mod:`tritium_backend_repeat.backend`.
"""

__version__ = "0.1.0"
