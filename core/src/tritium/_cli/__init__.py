"""The ``tritium`` command: ``serve`` (tritonserver's flags, the server config file), ``plugins``, ``repo check``.
The top layer."""

from __future__ import annotations

from tritium._cli.commands import main, run

__all__ = ["main", "run"]
