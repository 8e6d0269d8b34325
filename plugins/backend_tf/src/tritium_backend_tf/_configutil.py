"""Small readers of the ModelConfig message: enums by name, ``parameters`` values, Triton's value parsing.

The config is Tritium's protobuf ``ModelConfig`` (Triton's field names). Enum values are read and written
through the message's own descriptor, so no generated code is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tritium import ConfigError

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_TRUE = ("true", "on", "1", "yes")
_FALSE = ("false", "off", "0", "no")


def enum_name(message: Any, field: str) -> str:
    """The enum value name of ``message.<field>`` (e.g. ``"TYPE_FP32"``, ``"KIND_GPU"``)."""
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum_type.values_by_number.get(getattr(message, field))
    return value.name if value is not None else str(getattr(message, field))


def set_enum(message: Any, field: str, name: str) -> None:
    """Set ``message.<field>`` to the enum value called ``name``."""
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    setattr(message, field, enum_type.values_by_name[name].number)


def parameter(config: ModelConfig, key: str) -> str | None:
    """The ``string_value`` of ``parameters[key]``, None when the config has no such parameter."""
    if key in config.parameters:
        return str(config.parameters[key].string_value)
    return None


def parse_bool(value: str, what: str) -> bool:
    """Triton's boolean parsing: true/on/1/yes and false/off/0/no, any case."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"failed to convert '{value}' to boolean for {what}")


def parse_int(value: str, what: str) -> int:
    """A decimal integer, or ConfigError naming ``what``."""
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"failed to convert '{value}' to integer for {what}") from None


def parse_float(value: str, what: str) -> float:
    """A decimal number, or ConfigError naming ``what``."""
    try:
        return float(value.strip())
    except ValueError:
        raise ConfigError(f"failed to convert '{value}' to number for {what}") from None


def shape_string(dims: Any) -> str:
    """Triton's rendering of a shape: ``[-1,16]``."""
    return "[" + ",".join(str(int(d)) for d in dims) + "]"
