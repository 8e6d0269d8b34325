"""Runtime-adjustable settings: Triton's logging and trace extensions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from tritium._base.errors import TritiumError

LOG_FORMATS = ("default", "ISO8601")
TRACE_LEVELS = ("OFF", "TIMESTAMPS", "TENSORS")
_TRACE_KEYS = ("trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file", "trace_mode")
"""The trace settings, in the order Triton's HTTP answer lists them."""


@attrs.define(slots=True)
class LogSettings:
    """The logging extension's settings; changes apply to the ``tritium`` loggers at once."""

    log_file: str = ""
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_verbose_level: int = 0
    log_format: str = "default"

    def as_dict(self) -> dict[str, Any]:
        return {
            "log_file": self.log_file,
            "log_info": self.log_info,
            "log_warning": self.log_warning,
            "log_error": self.log_error,
            "log_verbose_level": self.log_verbose_level,
            "log_format": self.log_format,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LogSettings:
        """Settings as :meth:`as_dict` wrote them (in another process: the executor's, for a worker)."""
        names = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def update(self, settings: Mapping[str, Any]) -> None:
        """Apply ``settings`` (all or nothing); INVALID_ARG names the offending key."""
        staged = attrs.evolve(self)
        for key, value in settings.items():
            if key == "log_file":
                raise TritiumError.invalid_arg("log file location can not be updated through network protocol")
            if key in ("log_info", "log_warning", "log_error"):
                if not isinstance(value, bool):
                    raise TritiumError.invalid_arg(f"expect boolean for '{key}'")
                setattr(staged, key, value)
            elif key == "log_verbose_level":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise TritiumError.invalid_arg(f"expect unsigned integer for '{key}'")
                staged.log_verbose_level = value
            elif key == "log_format":
                if value not in LOG_FORMATS:
                    raise TritiumError.invalid_arg(
                        f"invalid argument for log_format, got '{value}'; expect 'default' or 'ISO8601'"
                    )
                staged.log_format = value
            else:
                raise TritiumError.invalid_arg(f"log setting '{key}' is not supported")
        for field in attrs.fields(LogSettings):
            setattr(self, field.name, getattr(staged, field.name))
        self.apply()

    def level(self) -> int:
        if self.log_verbose_level > 0:
            return logging.DEBUG
        if self.log_info:
            return logging.INFO
        if self.log_warning:
            return logging.WARNING
        if self.log_error:
            return logging.ERROR
        return logging.CRITICAL + 1

    def apply(self, *, handler_only: bool = False) -> None:
        """Make the settings take effect: on the ``tritium serve`` log handler when there is one (it
        filters by severity switches and formats lines), else (unless ``handler_only``: a worker following
        the executor's settings in a process that is not ``tritium serve``) on the ``tritium`` logger's level."""
        from tritium._runtime.log_config import TritonLogHandler

        handlers = [h for h in logging.getLogger().handlers if isinstance(h, TritonLogHandler)]
        for handler in handlers:
            handler.update(
                verbose=self.log_verbose_level, info=self.log_info, warning=self.log_warning,
                error=self.log_error, log_format=self.log_format,
            )
        if not handlers and not handler_only:
            logging.getLogger("tritium").setLevel(self.level())


def _default_trace() -> dict[str, Any]:
    return {
        "trace_level": ["OFF"],
        "trace_rate": "1000",
        "trace_count": "-1",
        "log_frequency": "0",
        "trace_file": "",
        "trace_mode": "triton",
    }


@attrs.define(slots=True)
class TraceSettings:
    """Trace settings, global and per model (stored and reported; tracing itself is not implemented)."""

    global_settings: dict[str, Any] = attrs.field(factory=_default_trace)
    per_model: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def get(self, model: str = "") -> dict[str, Any]:
        """The settings in force for ``model`` (or the global ones), in the order Triton writes them."""
        merged = dict(self.global_settings)
        merged.update(self.per_model.get(model, {}))
        return {
            k: (list(merged[k]) if isinstance(merged[k], list) else merged[k]) for k in _TRACE_KEYS if k in merged
        }

    def update(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        staged = dict(self.per_model.get(model, {})) if model else dict(self.global_settings)
        for key, value in settings.items():
            if key not in _TRACE_KEYS:
                raise TritiumError.invalid_arg(f"unknown trace setting '{key}'")
            if value is None:
                if model:
                    staged.pop(key, None)
                else:
                    staged[key] = _default_trace()[key]
                continue
            staged[key] = self._checked(key, value)
        if model:
            self.per_model[model] = staged
        else:
            self.global_settings = staged
        return self.get(model)

    @staticmethod
    def _checked(key: str, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise TritiumError.invalid_arg(f"expect string or array of strings for trace setting '{key}'")
        if key == "trace_level":
            bad = [v for v in values if v not in TRACE_LEVELS]
            if bad:
                raise TritiumError.invalid_arg(f"invalid trace level '{bad[0]}'; expect OFF, TIMESTAMPS or TENSORS")
            return list(values)
        if len(values) != 1:
            raise TritiumError.invalid_arg(f"expect a single value for trace setting '{key}'")
        text = values[0]
        if key in ("trace_rate", "trace_count", "log_frequency"):
            try:
                number = int(text)
            except ValueError:
                raise TritiumError.invalid_arg(f"unable to parse '{key}', got: {text}") from None
            if number < (-1 if key == "trace_count" else 0):
                raise TritiumError.invalid_arg(f"invalid value for '{key}': {text}")
        if key == "trace_mode" and text not in ("triton", "opentelemetry"):
            raise TritiumError.invalid_arg(f"invalid trace mode '{text}'")
        return text
