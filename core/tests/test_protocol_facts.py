"""Shared protocol facts: restricted categories and reserved parameter keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritium import protocol

KW = {"flag": "--http-restricted-api", "noun": "api", "format_hint": "<apis>:<key>=<value>"}


def test_groups_map_each_category_to_its_header() -> None:
    parsed = protocol.parse_restrictions(["health,metadata:admin=secret", "inference:x=1=2"], **KW)
    assert parsed == {"health": ("admin", "secret"), "metadata": ("admin", "secret"), "inference": ("x", "1=2")}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("health", "--http-restricted-api option format is '<apis>:<key>=<value>'. Got health"),
        ("nope:k=v", "unknown restricted api 'nope'"),
        ("health:=v", "option format"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        protocol.parse_restrictions([spec], **KW)


def test_a_category_in_two_groups_is_an_error() -> None:
    with pytest.raises(ValueError, match="restricted api 'health' can not be specified in multiple config groups"):
        protocol.parse_restrictions(["health:a=1", "health,trace:b=2"], **KW)


@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_input_parses_or_raises_value_error(specs: list[str]) -> None:
    try:
        parsed = protocol.parse_restrictions(specs, **KW)
    except ValueError:
        return
    assert set(parsed) <= set(protocol.RESTRICTED_CATEGORIES)


def test_reserved_keys() -> None:
    assert protocol.is_reserved_parameter("priority")
    assert protocol.is_reserved_parameter("triton_anything")
    assert not protocol.is_reserved_parameter("my_param")
