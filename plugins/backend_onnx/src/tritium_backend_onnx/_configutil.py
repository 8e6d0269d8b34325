"""Small readers of the ModelConfig message shared by the backend's modules.

The config is Tritium's protobuf ``ModelConfig`` (Triton's field names). Datatype enum values are read and
written through the message's own descriptor, so this module needs no import of the generated code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tritium import ConfigError

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_TRUE = ("true", "on", "1")
_FALSE = ("false", "off", "0")


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
    """Triton's boolean parsing: true/on/1 and false/off/0, any case."""
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


def int_parameter(config: ModelConfig, key: str, default: int) -> int:
    """``parameters[key]`` as an integer, ``default`` when absent."""
    value = parameter(config, key)
    return default if value is None else parse_int(value, f"parameter '{key}'")


def bool_parameter(config: ModelConfig, key: str) -> bool | None:
    """``parameters[key]`` as a boolean, None when absent."""
    value = parameter(config, key)
    return None if value is None else parse_bool(value, f"parameter '{key}'")


def shape_string(dims: Any) -> str:
    """Triton's rendering of a shape: ``[-1,16]``."""
    return "[" + ",".join(str(int(d)) for d in dims) + "]"
