"""Process logging for ``tritium serve``: tritonserver's log flags and line formats on Python's logging.

Formats (times in UTC, as tritonserver writes them)::

    default:  I1125 16:20:00.123456 1234 _server.py:42] server is ready
    ISO8601:  2024-11-25T16:20:00Z I 1234 _server.py:42] server is ready

Severity letters: ``E`` error (and critical), ``W`` warning, ``I`` info, ``V`` verbose (debug).
``--log-info/--log-warning/--log-error=false`` drop that severity; ``--log-verbose=1`` lets the debug
records of Tritium and its plugins (loggers named ``tritium*``) through, ``--log-verbose=2`` and up those of
every library too. The handler is installed on the root logger, so plugins' loggers are included.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tritium._base.options import ServerOptions

__all__ = ["TritonFormatter", "TritonLogHandler", "configure_logging"]

_HANDLER_NAME = "tritium-cli"


def _letter(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "E"
    if levelno >= logging.WARNING:
        return "W"
    if levelno >= logging.INFO:
        return "I"
    return "V"


class TritonFormatter(logging.Formatter):
    """tritonserver's log line prefix (``default`` or ``ISO8601``) followed by the message."""

    def __init__(self, log_format: str = "default") -> None:
        super().__init__()
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        where = f"{record.process} {record.filename}:{record.lineno}]"
        if self.log_format == "ISO8601":
            prefix = (
                f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z "
                f"{_letter(record.levelno)} {where}"
            )
        else:
            micros = int((record.created % 1) * 1_000_000)
            prefix = (
                f"{_letter(record.levelno)}{t.tm_mon:02d}{t.tm_mday:02d} "
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d} {where}"
            )
        text = f"{prefix} {record.getMessage()}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


class TritonLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records that tritonserver's severity switches let through, in its format.

    :meth:`update` changes the switches and the format at runtime (Triton's logging API does that)."""

    def __init__(self, stream: TextIO, options: ServerOptions, *, owns_stream: bool = False) -> None:
        super().__init__(stream)
        self.name = _HANDLER_NAME
        self.triton_formatter = TritonFormatter(options.log_format)
        self.setFormatter(self.triton_formatter)
        self.log_verbose = options.log_verbose
        self.log_info = options.log_info
        self.log_warning = options.log_warning
        self.log_error = options.log_error
        self._owns_stream = owns_stream

    def update(
        self,
        *,
        verbose: int | None = None,
        info: bool | None = None,
        warning: bool | None = None,
        error: bool | None = None,
        log_format: str | None = None,
    ) -> None:
        """Change what is logged and how; None leaves a setting as it is."""
        if verbose is not None:
            self.log_verbose = verbose
            logging.getLogger().setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
        if info is not None:
            self.log_info = info
        if warning is not None:
            self.log_warning = warning
        if error is not None:
            self.log_error = error
        if log_format is not None:
            self.triton_formatter.log_format = log_format

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelno
        if level >= logging.ERROR:
            allowed = self.log_error
        elif level >= logging.WARNING:
            allowed = self.log_warning
        elif level >= logging.INFO:
            allowed = self.log_info
        elif record.name.startswith("tritium"):
            allowed = self.log_verbose > 0
        else:
            allowed = self.log_verbose > 1  # other libraries' debug chatter (asyncio, grpc) only from 2
        return allowed and bool(super().filter(record))

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._owns_stream:
                self.stream.close()


def configure_logging(options: ServerOptions, *, stream: TextIO | None = None) -> TritonLogHandler:
    """Install (or replace) the process's log handler from the log options; returns it.

    Logs go to ``options.log_file`` (appended) when set, else to ``stream`` (default stderr). Raises
    OSError when the log file cannot be opened."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.name == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    if options.log_file:
        target: TextIO = open(options.log_file, "a", encoding="utf-8")  # noqa: SIM115 - the handler owns it
        handler = TritonLogHandler(target, options, owns_stream=True)
    else:
        handler = TritonLogHandler(stream if stream is not None else sys.stderr, options)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if options.log_verbose > 0 else logging.INFO)
    return handler
