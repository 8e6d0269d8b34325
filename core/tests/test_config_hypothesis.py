"""Properties of the config layer over arbitrary ModelConfig messages and arbitrary input text.

The message strategy walks the ModelConfig descriptor, so every field of the schema (and any field added
later) is exercised: nested messages, oneofs, maps, repeated fields, open enums, extreme integers.
Set TRITIUM_CONFIG_FUZZ_EXAMPLES (default 150) to search longer.
"""

from __future__ import annotations

import json
import os
import string
from typing import Any

import tritonclient.grpc.model_config_pb2 as triton_pb
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritium import ConfigError
from tritium.config import (
    ModelConfig,
    format_model_config,
    model_config_from_json,
    model_config_to_json,
    normalize_model_config,
    parse_model_config,
)

EXAMPLES = int(os.environ.get("TRITIUM_CONFIG_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_DEPTH = 6

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    """Mostly small values (as configs hold), sometimes anything the type holds."""
    return st.one_of(st.integers(max(low, -2), 16), st.integers(low, high))


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=6),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=False),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=False),
    **{kind: _ints(low, high) for kind, (low, high) in _INT_RANGES.items()},
}


def _value(field: Any, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return _message(field.message_type, depth + 1)
    if field.enum_type is not None:  # open enums: an unknown number is a valid value too
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(0, 40))
    return _SCALARS[field.type]


def _field(field: Any, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _SCALARS[field.message_type.fields_by_name["key"].type]
        return st.dictionaries(key, _value(field.message_type.fields_by_name["value"], depth), max_size=2)
    if field.is_repeated:
        return st.lists(_value(field, depth), max_size=3)
    return _value(field, depth)


def _message(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = ModelConfig if descriptor is ModelConfig.DESCRIPTOR else None
    if depth >= MAX_DEPTH:
        return st.builds(lambda: _new(descriptor, cls))
    optional = {field.name: _field(field, depth) for field in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(descriptor, cls, values))


def _new(descriptor: Any, cls: type[Message] | None) -> Message:
    return (cls or message_factory.GetMessageClass(descriptor))()


def _build(descriptor: Any, cls: type[Message] | None, values: dict[str, Any]) -> Message:
    message = _new(descriptor, cls)
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_is_message = field.message_type.fields_by_name["value"].message_type is not None
            for key, item in value.items():
                target[key].CopyFrom(item) if value_is_message else target.__setitem__(key, item)
        elif field.is_repeated:
            if field.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


model_configs = _message(ModelConfig.DESCRIPTOR)


@SETTINGS
@given(model_configs)
def test_text_format_round_trip(config: ModelConfig) -> None:
    assert parse_model_config(format_model_config(config)) == config


@SETTINGS
@given(model_configs)
def test_json_round_trip(config: ModelConfig) -> None:
    text = json.dumps(model_config_to_json(config))
    assert model_config_from_json(text) == config
    assert model_config_to_json(model_config_from_json(json.loads(text))) == model_config_to_json(config)


@SETTINGS
@given(model_configs)
def test_binary_round_trip_with_tritonclients_class(config: ModelConfig) -> None:
    data = config.SerializeToString(deterministic=True)
    theirs = triton_pb.ModelConfig.FromString(data)
    assert theirs.SerializeToString(deterministic=True) == data


@SETTINGS
@given(model_configs, st.sampled_from(["m", "a.identity"]), st.integers(0, 3), st.booleans())
def test_normalize_raises_only_config_errors_and_is_idempotent(
    config: ModelConfig, name: str, gpu_count: int, soft: bool
) -> None:
    kwargs: dict[str, Any] = {"model_name": name, "source": "s", "gpu_count": gpu_count, "allow_soft_placement": soft}
    config.name = name if config.name else ""
    try:
        once = normalize_model_config(config, **kwargs)
    except ConfigError:
        return
    assert normalize_model_config(once, **kwargs) == once


PBTXT_TOKENS = st.sampled_from(
    ["name", "input", "dims", ":", "{", "}", "[", "]", "<", ">", ",", ";", '"x"', "'y'", "-1", "0x1f", "1e5",
     "TYPE_FP32", "max_batch_size", "dynamic_batching", "#", "\n", " ", "inf", "nan", '"\\', "\\x",
     "99999999999999999999"]
)  # fmt: skip


@SETTINGS
@given(st.one_of(st.text(), st.lists(PBTXT_TOKENS, max_size=30).map(" ".join)))
def test_arbitrary_text_raises_only_config_errors(text: str) -> None:
    try:
        parse_model_config(text, "fuzz.pbtxt")
    except ConfigError as error:
        assert str(error).startswith("fuzz.pbtxt")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(string.ascii_letters + "_", max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    ["name", "max_batch_size", "maxBatchSize", "input", "dims", "data_type", "dynamic_batching",
     "priority_queue_policy", "instance_group", "kind", "parameters", "string_value", "version_policy"]
)  # fmt: skip
JSON_OBJECTS = st.recursive(
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=3),
    lambda inner: st.dictionaries(FIELD_NAMES, inner | st.lists(inner, max_size=2), max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(st.one_of(JSON_VALUES, JSON_OBJECTS, st.text(max_size=40)))
def test_arbitrary_json_raises_only_config_errors(data: Any) -> None:
    try:
        if isinstance(data, dict):
            model_config_from_json(data, "fuzz")
        model_config_from_json(data if isinstance(data, str) else json.dumps(data), "fuzz")
    except ConfigError as error:
        assert str(error).startswith("fuzz")
