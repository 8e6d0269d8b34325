"""Optimization profiles: which an instance gets, and which one serves a set of input shapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_backend_tensorrt._profiles import (
    ProfileRange,
    configured_profiles,
    instance_profiles,
    parse_profile_name,
    select_profile,
)

from tritium import ConfigError, StatusCode, TritiumError


def rng(low, opt, high):
    return ProfileRange(tuple(low), tuple(opt), tuple(high))


SMALL = {"X": rng([1, 1], [2, 4], [4, 8])}
LARGE = {"X": rng([4, 8], [16, 32], [32, 64])}


def test_one_profile_holding_the_shapes_is_chosen():
    assert select_profile([(0, SMALL)], {"X": (2, 3)}) == 0


def test_the_profile_whose_range_holds_the_shapes_is_chosen():
    assert select_profile([(0, SMALL), (1, LARGE)], {"X": (20, 40)}) == 1
    assert select_profile([(0, SMALL), (1, LARGE)], {"X": (1, 1)}) == 0


def test_overlapping_profiles_pick_the_closest_opt():
    # (4, 8) lies in both; distance to SMALL's opt (2,4) is 6, to LARGE's opt (16,32) is 36
    assert select_profile([(0, SMALL), (1, LARGE)], {"X": (4, 8)}) == 0
    near_large = {"X": rng([1, 1], [30, 60], [32, 64])}
    assert select_profile([(0, SMALL), (1, near_large)], {"X": (4, 8)}) == 0
    assert select_profile([(0, SMALL), (5, near_large)], {"X": (4, 8)}) == 0


def test_ties_go_to_the_lowest_profile_index():
    assert select_profile([(3, SMALL), (1, dict(SMALL))], {"X": (2, 4)}) == 1


def test_no_profile_holding_the_shapes_is_invalid_arg_naming_the_ranges():
    with pytest.raises(TritiumError) as info:
        select_profile([(0, SMALL), (1, LARGE)], {"X": (64, 64)})
    assert info.value.code is StatusCode.INVALID_ARG
    assert "X [64,64]" in str(info.value)
    assert "profile 0: X [1,1]..[4,8]" in str(info.value)
    assert "profile 1: X [4,8]..[32,64]" in str(info.value)


def test_wrong_rank_fits_no_profile():
    with pytest.raises(TritiumError):
        select_profile([(0, SMALL)], {"X": (2,)})


def test_profile_names(config_from):
    assert parse_profile_name("1", 3, "m") == 1
    for bad, message in (("", "must not be empty"), ("one", "unable to parse"), ("3", "invalid profile 3"),
                         ("-1", "invalid profile -1")):
        with pytest.raises(ConfigError, match=message):
            parse_profile_name(bad, 3, "m")


def test_instance_profiles_follow_the_instance_group(config_from):
    config = config_from(
        'name: "m" instance_group [ { name: "a" profile: ["2", "0", "2"] }, { name: "b" }, { profile: "1" } ]'
    )
    assert instance_profiles(config, "a", 3) == (0, 2)
    assert instance_profiles(config, "b", 3) == (0,)
    assert instance_profiles(config, "m_2", 3) == (1,)
    assert instance_profiles(config, "unknown", 3) == (0,)
    assert configured_profiles(config, 3) == (0, 1, 2)
    assert configured_profiles(config_from('name: "m"'), 3) == (0,)
    with pytest.raises(ConfigError, match="Number of profiles supported by TensorRT engine: 2"):
        instance_profiles(config, "a", 2)


# ------------------------------------------------------------------------------------------- properties
@st.composite
def profiles_and_shapes(draw):
    rank = draw(st.integers(1, 3))
    names = draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True))
    count = draw(st.integers(1, 4))
    candidates = []
    for index in draw(st.lists(st.integers(0, 7), min_size=count, max_size=count, unique=True)):
        ranges = {}
        for name in names:
            lows = draw(st.lists(st.integers(0, 20), min_size=rank, max_size=rank))
            spans = draw(st.lists(st.integers(0, 20), min_size=rank, max_size=rank))
            highs = [lo + s for lo, s in zip(lows, spans, strict=True)]
            opts = [draw(st.integers(lo, hi)) for lo, hi in zip(lows, highs, strict=True)]
            ranges[name] = rng(lows, opts, highs)
        candidates.append((index, ranges))
    shapes = {name: tuple(draw(st.lists(st.integers(0, 45), min_size=rank, max_size=rank))) for name in names}
    return candidates, shapes


def _distance(ranges, shapes):
    return sum(ranges[n].distance(s) for n, s in shapes.items())


@settings(max_examples=300, deadline=None)
@given(profiles_and_shapes())
def test_selection_is_a_fitting_profile_with_minimal_distance_or_an_error(case):
    candidates, shapes = case
    fitting = [(i, r) for i, r in candidates if all(r[n].holds(s) for n, s in shapes.items())]
    if not fitting:
        with pytest.raises(TritiumError) as info:
            select_profile(candidates, shapes)
        assert info.value.code is StatusCode.INVALID_ARG
        return
    chosen = select_profile(candidates, shapes)
    ranges = dict(candidates)[chosen]
    assert all(ranges[n].holds(s) for n, s in shapes.items())
    best = min(_distance(r, shapes) for _, r in fitting)
    assert _distance(ranges, shapes) == best
    assert chosen == min(i for i, r in fitting if _distance(r, shapes) == best)


@settings(max_examples=200, deadline=None)
@given(profiles_and_shapes())
def test_opt_shapes_select_their_own_profile_when_it_is_the_only_one_at_distance_zero(case):
    candidates, _ = case
    index, ranges = candidates[0]
    shapes = {n: r.opt for n, r in ranges.items()}
    chosen = select_profile(candidates, shapes)
    assert _distance(dict(candidates)[chosen], shapes) == 0
    assert chosen <= index or _distance(ranges, shapes) == 0
