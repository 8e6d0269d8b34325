"""The ModelConfig readers every backend shares (tritium.config): parameters, Triton's value parsing, enums."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritium import ConfigError
from tritium.config import (
    ModelConfig,
    bool_parameter,
    enum_name,
    int_parameter,
    parameter_value,
    parse_bool_value,
    parse_float_value,
    parse_int_value,
    set_enum,
    shape_string,
)


def test_parameters_are_read_as_triton_reads_them() -> None:
    config = ModelConfig()
    config.parameters["threads"].string_value = " 4 "
    config.parameters["fast"].string_value = "On"
    config.parameters["bad"].string_value = "maybe"
    assert parameter_value(config, "threads") == " 4 " and parameter_value(config, "absent") is None
    assert int_parameter(config, "threads", 1) == 4 and int_parameter(config, "absent", 7) == 7
    assert bool_parameter(config, "fast") is True and bool_parameter(config, "absent") is None
    with pytest.raises(ConfigError, match="failed to convert 'maybe' to boolean for parameter 'bad'"):
        bool_parameter(config, "bad")
    with pytest.raises(ConfigError, match="failed to convert 'maybe' to integer for parameter 'bad'"):
        int_parameter(config, "bad", 0)
    with pytest.raises(ConfigError, match="to number for x"):
        parse_float_value("1.5.2", "x")
    assert parse_float_value(" 0.25", "x") == 0.25 and parse_int_value("-3", "x") == -3


@given(st.sampled_from(["true", "on", "1", "false", "off", "0"]), st.lists(st.booleans(), min_size=5, max_size=5))
def test_bool_words_in_any_case(word: str, upper: list[bool]) -> None:
    spelled = "".join(c.upper() if u else c for c, u in zip(word, upper * 2, strict=False))
    assert parse_bool_value(spelled, "x") is (word in ("true", "on", "1"))


@given(st.text(max_size=6).filter(lambda t: t.strip().lower() not in ("true", "on", "1", "false", "off", "0")))
def test_anything_else_is_an_error_unless_the_backend_allows_it(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_bool_value(text, "x")
    assert parse_bool_value(text, "x", true_words=(text.strip().lower(),)) is True


def test_enums_by_name_and_shapes() -> None:
    config = ModelConfig()
    group = config.instance_group.add()
    set_enum(group, "kind", "KIND_GPU")
    assert enum_name(group, "kind") == "KIND_GPU"
    tensor = config.input.add(name="x")
    set_enum(tensor, "data_type", "TYPE_FP16")
    assert enum_name(tensor, "data_type") == "TYPE_FP16"
    assert shape_string([-1, 16]) == "[-1,16]" and shape_string([]) == "[]"
