"""The error raised for an invalid model configuration, and the internal problem report behind it.

Validators raise :class:`Problem` (a field path and Triton's message, no file name); the public functions of
:mod:`tritium.config` turn it into :class:`ModelConfigError`, which names the source file too.
"""

from __future__ import annotations

from tritium._base.errors import ConfigError


class ModelConfigError(ConfigError):
    """A model configuration is invalid.

    ``source`` is the file (or ``"<string>"``/``"<json>"``) the config came from, ``field`` the path of the
    offending field (``"input[0].dims"``; empty when the problem is not tied to one field) and ``detail``
    Triton's own message for the problem, so that a server can answer exactly as Triton does. Syntax errors
    also carry the 1-based ``line`` and ``column`` (0 otherwise).
    The exception's message is ``"<source>: <field>: <detail>"`` or, for syntax errors,
    ``"<source>:<line>:<column>: <detail>"``.
    """

    def __init__(self, source: str, field: str, detail: str, *, line: int = 0, column: int = 0) -> None:
        where = f"{source}:{line}:{column}" if line else source
        if field:
            where = f"{where}: {field}"
        super().__init__(f"{where}: {detail}")
        self.source = source
        self.field = field
        self.detail = detail
        self.line = line
        self.column = column


class Problem(Exception):
    """An invalid field found by a validator (internal: converted to ModelConfigError at the API)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail

    def at(self, source: str) -> ModelConfigError:
        """The public error for this problem in ``source``."""
        return ModelConfigError(source, self.field, self.detail)
