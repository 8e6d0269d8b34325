"""The kernel's version and the version of its plugin API (re-exported as ``tritium.__version__`` and
``tritium.PLUGIN_API_VERSION``)."""

from __future__ import annotations

__version__ = "0.1.0"

PLUGIN_API_VERSION = 1
"""The version of the plugin contract (hookspecs, ``tritium.abc``, the specs, ``tritium.testing``). Kernel
releases ``0.<PLUGIN_API_VERSION>.*`` implement it; a change that can break a plugin written against it starts
the next kernel minor release. Plugins pin ``tritium>=0.1,<0.2`` (see docs/plugins.md, "Stability")."""
