"""AOTInductor call-specification names (pure, no torch): Triton's README example and hypothesis trees."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tritium_backend_torch._callspec import CallSpec

from tritium import ConfigError

LEAF = {"type": None, "context": None, "children_spec": []}


def node(kind, children, keys=None):
    return {"type": kind, "context": json.dumps(keys) if keys is not None else "null", "children_spec": children}


def spec(tree):
    return json.dumps([1, tree])


def readme_example() -> CallSpec:
    """The call spec of the model in Triton's pytorch_backend README (two args, a dict arg, two kwargs; a
    dict result with nested tuple and dicts)."""
    args = node("builtins.tuple", [LEAF, LEAF, node("builtins.dict", [LEAF, LEAF], ["keyA", "key2"])])
    kwargs = node("builtins.dict", [LEAF, LEAF], ["kwarg1", "kw_arg2"])
    result = node(
        "builtins.dict",
        [LEAF, LEAF, node("builtins.tuple", [LEAF, LEAF]), node("builtins.dict", [LEAF, LEAF], ["keyA", "key2"]),
         node("builtins.dict", [LEAF, LEAF], ["KA", "KB"])],
        ["AAA", "ZZZ", "BBB", "CCC", "DDD"],
    )
    return CallSpec.from_strings([spec(node("builtins.tuple", [args, kwargs])), spec(result)])


def test_readme_names():
    call = readme_example()
    assert call.inputs == ("ARGS[0]", "ARGS[1]", "ARGS[2][keyA]", "ARGS[2][key2]", "KWARGS[kwarg1]",
                           "KWARGS[kw_arg2]")
    assert call.outputs == ("RESULT[AAA]", "RESULT[ZZZ]", "RESULT[BBB][0]", "RESULT[BBB][1]", "RESULT[CCC][keyA]",
                            "RESULT[CCC][key2]", "RESULT[DDD][KA]", "RESULT[DDD][KB]")
    # ordinal and forward-based names address the same leaves, in any config order
    assert call.bind("output", "m", ["RESULT[ZZZ]", "OUTPUT__0", "RESULT[DDD][KB]"]) == {
        "RESULT[ZZZ]": 1, "OUTPUT__0": 0, "RESULT[DDD][KB]": 7}
    names = ["INPUT__5", "ARGS[0]", "INPUT__1", "ARGS[2][keyA]", "INPUT__3", "KWARGS[kwarg1]"]
    assert call.bind("input", "m", names) == {n: p for n, p in zip(names, [5, 0, 1, 2, 3, 4], strict=True)}


def test_single_tensor_result_is_RESULT():
    call = CallSpec.from_strings([spec(node("builtins.tuple", [node("builtins.tuple", [LEAF]),
                                                                node("builtins.dict", [], [])])), spec(LEAF)])
    assert call.inputs == ("ARGS[0]",)
    assert call.outputs == ("RESULT",)


def test_binding_errors():
    call = readme_example()
    with pytest.raises(ConfigError, match="not in the package's call specification"):
        call.bind("input", "m", ["INPUT__6"])
    with pytest.raises(ConfigError, match="leaves out INPUT__5"):
        call.bind("input", "m", ["INPUT__0", "INPUT__1", "INPUT__2", "INPUT__3", "INPUT__4"])
    with pytest.raises(ConfigError, match="name the same tensor"):
        call.bind("output", "m", ["OUTPUT__0", "RESULT[AAA]"])


@pytest.mark.parametrize(
    "bad",
    ["not json", json.dumps({"a": 1}), spec(node("collections.namedtuple", [LEAF])),
     spec(node("builtins.dict", [LEAF], ['a"b'])), spec(node("builtins.dict", [LEAF], ["a b"])),
     spec(node("builtins.dict", [LEAF, LEAF], ["only-one"]))],
)
def test_unsupported_results_are_config_errors(bad):
    good_inputs = spec(node("builtins.tuple", [node("builtins.tuple", [LEAF]), node("builtins.dict", [], [])]))
    with pytest.raises(ConfigError):
        CallSpec.from_strings([good_inputs, bad])


KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", min_size=1,
               max_size=6)
TREES = st.recursive(
    st.just(LEAF),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: node("builtins.tuple", c)),
        st.lists(children, min_size=1, max_size=3).map(lambda c: node("builtins.list", c)),
        st.dictionaries(KEYS, children, min_size=1, max_size=3).map(
            lambda d: node("builtins.dict", list(d.values()), list(d))),
    ),
    max_leaves=8,
)


def _count(tree) -> int:
    return 1 if tree["type"] is None else sum(_count(c) for c in tree["children_spec"])


@given(TREES)
def test_every_leaf_has_a_unique_name_and_its_ordinal(tree):
    call = CallSpec.from_strings([spec(node("builtins.tuple", [node("builtins.tuple", [LEAF]),
                                                              node("builtins.dict", [], [])])), spec(tree)])
    assert len(call.outputs) == _count(tree)
    assert len(set(call.outputs)) == len(call.outputs)
    for index, name in enumerate(call.outputs):
        assert name.startswith("RESULT")
        assert call.position("output", name) == index
        assert call.position("output", f"OUTPUT__{index}") == index
    assert call.position("output", f"OUTPUT__{len(call.outputs)}") is None
