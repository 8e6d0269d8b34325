"""ModelConfig as JSON, the way Triton renders and accepts it.

Rendering follows Triton's ``ModelConfigToJson`` (core ``model_config_utils.cc``): protobuf JSON with proto
field names, every field without presence printed even when it holds its default (scalars, repeated fields
as ``[]``, maps as ``{}``), message fields and oneof members only when set, enums by name, and the 64-bit
integer fields Triton fixes up written as JSON numbers instead of protobuf's strings. Triton fixes a fixed
list of fields; three 64-bit fields are not on it and stay strings there, so they stay strings here too
(:data:`INT64_AS_STRING`). Fields come in declaration order, except that a set scalar member of a oneof comes
after the other fields of its message (observed with Triton 2.51: ``initial_state`` prints ``name`` before
``zero_data``). Map entries come sorted by key (Triton prints them in an unspecified hash order).

Parsing follows Triton's ``JsonToModelConfig``: proto names or lowerCamelCase JSON names, enum names in any
letter case or enum numbers, 64-bit integers as numbers or strings, unknown fields rejected.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tritium._model_config.errors import ModelConfigError
from tritium.proto.model_config_pb2 import ModelConfig

INT64_AS_STRING = frozenset(
    {
        "inference.ModelSequenceBatching.InitialState.dims",
        "inference.ModelOptimizationPolicy.Cuda.GraphSpec.Shape.dim",
        "inference.ModelInstanceGroup.SecondaryDevice.device_id",
    }
)
"""Full names of the 64-bit fields Triton's config JSON leaves as strings (not on its fix-up list)."""

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# Descriptor objects, typed loosely: protobuf's stubs describe the pure-Python descriptor classes, while the
# runtime (upb) hands out its own, which the stubs type differently.
Field = Any
MessageType = Any


def model_config_to_json(config: ModelConfig) -> dict[str, Any]:
    """Triton's JSON rendering of ``config`` (the body of ``GET /v2/models/<m>/config``), as a dict whose
    ``json.dumps`` matches Triton's text (key order included)."""
    return _message_to_dict(config)


def model_config_from_json(data: str | bytes | Mapping[str, Any], source: str = "<json>") -> ModelConfig:
    """Parse a ModelConfig from Triton's JSON form (a JSON text or an already decoded mapping).

    This is what Triton's load API carries in its ``config`` parameter. Raises :class:`ModelConfigError`
    naming ``source`` and the problem.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ModelConfigError(source, "", f"invalid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ModelConfigError(source, "", "a model configuration must be a JSON object")
    config = ModelConfig()
    try:
        json_format.ParseDict(_upper_enum_names(data, ModelConfig.DESCRIPTOR), config)
    except Exception as exc:  # ParseError mostly; odd inputs raise others (TypeError, RecursionError)
        raise ModelConfigError(source, "", str(exc) or type(exc).__name__) from None
    return config


# ------------------------------------------------------------------------------------------- rendering
def _message_to_dict(message: Message) -> dict[str, Any]:
    """One message: its fields in Triton's order."""
    out: dict[str, Any] = {}
    trailing: list[Field] = []
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None:
            if message.WhichOneof(field.containing_oneof.name) != field.name:
                continue
            if field.message_type is None:
                trailing.append(field)
                continue
        elif field.message_type is not None and not _is_repeated(field) and not message.HasField(field.name):
            continue
        out[field.name] = _field_to_json(field, getattr(message, field.name))
    for field in trailing:
        out[field.name] = _field_to_json(field, getattr(message, field.name))
    return out


def _field_to_json(field: Field, value: Any) -> Any:
    """A field's value: a map as an object, a repeated field as a list, else one value."""
    if _is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        return {_map_key(key_field, k): _value_to_json(value_field, value[k]) for k in sorted(value)}
    if _is_repeated(field):
        return [_value_to_json(field, item) for item in value]
    return _value_to_json(field, value)


def _value_to_json(field: Field, value: Any) -> Any:
    """One scalar, enum or message value."""
    if field.message_type is not None:
        return _message_to_dict(value)
    if field.enum_type is not None:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    if field.type in _INT64_TYPES:
        return str(value) if field.full_name in INT64_AS_STRING else int(value)
    if field.type in _FLOAT_TYPES:
        return _float_to_json(float(value), field.type == FieldDescriptor.TYPE_FLOAT)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _float_to_json(value: float, single: bool) -> float | int | str:
    """Protobuf's JSON float: shortest text that reads back as the same float32/float64; "NaN" and
    "Infinity" as strings; integral values without a fraction (as C++ protobuf prints them; -0.0 stays a
    float, keeping its sign)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if single:
        shortest = float(str(np.float32(value)))
        value = shortest if abs(shortest) <= _FLOAT32_MAX else value  # near the limit the exact value parses
    if value.is_integer() and abs(value) < 1e15 and math.copysign(1.0, value) > 0:
        return int(value)
    return value


def _map_key(key_field: Field, key: Any) -> str:
    """JSON object keys are strings: ``"true"``/``"false"`` for bool keys, decimal for integer keys."""
    if key_field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if key else "false"
    return str(key)


def _is_repeated(field: Field) -> bool:
    return bool(field.is_repeated)


def _is_map(field: Field) -> bool:
    return bool(_is_repeated(field) and field.message_type is not None and field.message_type.GetOptions().map_entry)


# ----------------------------------------------------------------------------------------------- parsing
def _upper_enum_names(data: Any, descriptor: MessageType) -> Any:
    """Copy of a JSON object with enum names upper-cased where that names a value (Triton parses enums
    case-insensitively); everything else is left for ParseDict to judge."""
    if not isinstance(data, Mapping):
        return data
    fields = {**descriptor.fields_by_name, **{f.json_name: f for f in descriptor.fields}}
    return {key: _upper_field(fields.get(key), value) for key, value in data.items()}


def _upper_field(field: Field | None, value: Any) -> Any:
    if field is None:
        return value
    if _is_map(field):
        if not isinstance(value, Mapping):
            return value
        value_field = field.message_type.fields_by_name["value"]
        return {k: _upper_value(value_field, v) for k, v in value.items()}
    if _is_repeated(field) and isinstance(value, list):
        return [_upper_value(field, item) for item in value]
    return _upper_value(field, value)


def _upper_value(field: Field, value: Any) -> Any:
    if field.message_type is not None:
        return _upper_enum_names(value, field.message_type)
    if field.enum_type is not None and isinstance(value, str):
        upper = value.upper()
        if value not in field.enum_type.values_by_name and upper in field.enum_type.values_by_name:
            return upper
    return value
