"""Readers of a ModelConfig that every backend needs: enum values by name, ``parameters`` values, and Triton's
parsing of the strings they hold (its backends' ``ParseBoolValue`` and friends).

The config is Tritium's protobuf ``ModelConfig`` (Triton's field names). Enum values are read and written
through the message's own descriptor, so no generated code is imported here. Public through
:mod:`tritium.config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tritium._base.errors import ConfigError

if TYPE_CHECKING:
    from tritium.proto.model_config_pb2 import ModelConfig

TRUE_WORDS = ("true", "on", "1")
FALSE_WORDS = ("false", "off", "0")


def enum_name(message: Any, field: str) -> str:
    """The enum value name of ``message.<field>`` (e.g. ``"TYPE_FP32"``, ``"KIND_GPU"``)."""
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum_type.values_by_number.get(getattr(message, field))
    return str(value.name) if value is not None else str(getattr(message, field))


def set_enum(message: Any, field: str, name: str) -> None:
    """Set ``message.<field>`` to the enum value called ``name``."""
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    setattr(message, field, enum_type.values_by_name[name].number)


def parameter_value(config: ModelConfig, key: str) -> str | None:
    """The ``string_value`` of ``parameters[key]``, None when the config has no such parameter."""
    if key in config.parameters:
        return str(config.parameters[key].string_value)
    return None


def parse_bool_value(
    value: str, what: str, *, true_words: tuple[str, ...] = TRUE_WORDS, false_words: tuple[str, ...] = FALSE_WORDS
) -> bool:
    """Triton's boolean parsing: true/on/1 and false/off/0, any case (a backend that documents more words
    passes its own); ConfigError naming ``what`` otherwise."""
    lowered = value.strip().lower()
    if lowered in true_words:
        return True
    if lowered in false_words:
        return False
    raise ConfigError(f"failed to convert '{value}' to boolean for {what}")


def parse_int_value(value: str, what: str) -> int:
    """A decimal integer, or ConfigError naming ``what``."""
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"failed to convert '{value}' to integer for {what}") from None


def parse_float_value(value: str, what: str) -> float:
    """A decimal number, or ConfigError naming ``what``."""
    try:
        return float(value.strip())
    except ValueError:
        raise ConfigError(f"failed to convert '{value}' to number for {what}") from None


def int_parameter(config: ModelConfig, key: str, default: int) -> int:
    """``parameters[key]`` as an integer, ``default`` when absent."""
    value = parameter_value(config, key)
    return default if value is None else parse_int_value(value, f"parameter '{key}'")


def bool_parameter(config: ModelConfig, key: str) -> bool | None:
    """``parameters[key]`` as a boolean, None when absent."""
    value = parameter_value(config, key)
    return None if value is None else parse_bool_value(value, f"parameter '{key}'")


def shape_string(dims: Any) -> str:
    """Triton's rendering of a shape: ``[-1,16]``."""
    return "[" + ",".join(str(int(d)) for d in dims) + "]"
