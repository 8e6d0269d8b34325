"""Triton's TorchScript naming rules (pure functions, no torch): examples and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tritium_backend_torch._naming import Convention, bind_inputs, bind_outputs, named_index

from tritium import ConfigError

IDENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=12)


@pytest.mark.parametrize(
    ("name", "index"),
    [("INPUT__0", 0), ("OUTPUT__12", 12), ("x__3", 3), ("INPUT0", None), ("INPUT__", None), ("IN__x1", None),
     ("A__1__2", None), ("IN__٣", None)],
)
def test_named_index(name, index):
    assert named_index(name) == index


def test_forward_argument_names_win():
    binding = bind_inputs("m", ["b", "a"], ["a", "b"], dict_input=False)
    assert binding.convention is Convention.FORWARD_ARGUMENT
    assert dict(binding.positions) == {"b": 1, "a": 0}


def test_named_index_when_not_all_are_arguments():
    binding = bind_inputs("m", ["INPUT__1", "INPUT__0"], ["x", "y"], dict_input=False)
    assert binding.convention is Convention.NAMED_INDEX
    assert dict(binding.positions) == {"INPUT__1": 1, "INPUT__0": 0}


def test_config_order_as_last_resort():
    binding = bind_inputs("m", ["first", "INPUT__0"], ["x", "y"], dict_input=False)
    assert binding.convention is Convention.CONFIG_ORDER
    assert dict(binding.positions) == {"first": 0, "INPUT__0": 1}


def test_dict_input_takes_any_names_and_any_count():
    binding = bind_inputs("m", ["a", "b", "c"], ["inputs"], dict_input=True)
    assert binding.convention is Convention.DICT
    assert set(binding.positions) == {"a", "b", "c"}


def test_count_mismatch_is_tritons_error():
    expected = r"unable to load model 'm', configuration expects 1 inputs, model provides 2"
    with pytest.raises(ConfigError, match=expected):
        bind_inputs("m", ["INPUT__0"], ["x", "y"], dict_input=False)


def test_index_past_the_arguments_and_duplicates():
    with pytest.raises(ConfigError, match="names index 5"):
        bind_inputs("m", ["INPUT__5", "INPUT__0"], ["x", "y"], dict_input=False)
    with pytest.raises(ConfigError, match="both name index 0"):
        bind_inputs("m", ["A__0", "B__0"], ["x", "y"], dict_input=False)


def test_no_tensors_is_tritons_error():
    with pytest.raises(ConfigError, match="at least one input"):
        bind_inputs("m", [], [], dict_input=False)
    with pytest.raises(ConfigError, match="at least one output"):
        bind_outputs("m", [])


def test_outputs():
    assert bind_outputs("m", ["OUTPUT__1", "OUTPUT__0"]).positions == {"OUTPUT__1": 1, "OUTPUT__0": 0}
    ordered = bind_outputs("m", ["OUTPUT__1", "probabilities"])
    assert ordered.convention is Convention.CONFIG_ORDER
    assert dict(ordered.positions) == {"OUTPUT__1": 0, "probabilities": 1}


@given(st.lists(IDENT, min_size=1, max_size=6, unique=True), st.randoms())
def test_argument_names_bind_to_their_positions_in_any_order(arguments, rng):
    names = list(arguments)
    rng.shuffle(names)
    binding = bind_inputs("m", names, arguments, dict_input=False)
    assert binding.convention is Convention.FORWARD_ARGUMENT
    assert all(arguments[binding.positions[n]] == n for n in names)


@given(st.lists(IDENT, min_size=1, max_size=6), st.lists(IDENT, min_size=1, max_size=6, unique=True))
def test_inputs_always_bind_to_distinct_argument_positions_or_refuse(arguments, config_names):
    """Whatever the names, a binding gives every config input its own valid argument, or raises ConfigError."""
    try:
        binding = bind_inputs("m", config_names, arguments, dict_input=False)
    except ConfigError:
        return
    positions = [binding.positions[n] for n in config_names]
    assert sorted(positions) == list(range(len(arguments)))


@given(st.lists(st.integers(0, 20), min_size=1, max_size=8, unique=True),
       IDENT.filter(lambda p: "__" not in p and not p.endswith("_")))
def test_named_index_outputs_use_their_index(indexes, prefix):
    """(A prefix holding "__" or ending in "_" moves the first "__", which decides the index.)"""
    names = [f"{prefix}__{i}" for i in indexes]
    binding = bind_outputs("m", names)
    assert binding.convention is Convention.NAMED_INDEX
    assert [binding.positions[n] for n in names] == indexes
