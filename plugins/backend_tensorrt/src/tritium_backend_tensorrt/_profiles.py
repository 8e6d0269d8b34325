"""Optimization profiles: which ones an instance gets, and which one serves a given set of input shapes.

As in Triton's TensorRT backend:

- an instance group's ``profile: ["1", "2"]`` gives each of its instances one execution context per listed
  profile; a group listing none gets the engine's profile 0 ("default");
- for each execution the instance picks, among its profiles whose [min, max] ranges hold every input shape,
  the one closest to the shapes TensorRT was optimized for: the smallest sum over inputs and dimensions of
  ``|opt - shape|`` (Manhattan distance); ties go to the lowest profile index;
- when none holds the shapes the execution fails with INVALID_ARG naming the ranges (Triton logs it and
  lets TensorRT refuse the shapes, which fails the requests all the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from tritium import ConfigError, TritiumError

Shape = tuple[int, ...]


@attrs.define(frozen=True, slots=True)
class ProfileRange:
    """The shapes one optimization profile allows for one input: ``min <= shape <= max`` per dimension."""

    min: Shape
    opt: Shape
    max: Shape

    def holds(self, shape: Shape) -> bool:
        return len(shape) == len(self.max) and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max, strict=True)
        )

    def distance(self, shape: Shape) -> int:
        return sum(abs(o - d) for o, d in zip(self.opt, shape, strict=True))

    def describe(self) -> str:
        return f"{_text(self.min)}..{_text(self.max)}"


def _text(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def parse_profile_name(name: str, num_profiles: int, model: str) -> int:
    """The profile index an instance group's ``profile`` entry names (a decimal index into the engine's
    profiles); ConfigError when it is empty, not a number, or out of range."""
    if not name:
        raise ConfigError(f"model '{model}': profile name must not be empty")
    text = name.strip()
    if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())):
        raise ConfigError(f"model '{model}': unable to parse profile '{name}': not a profile index")
    index = int(text)
    if not 0 <= index < num_profiles:
        raise ConfigError(
            f"model '{model}': configuration specified invalid profile {name}. "
            f"Number of profiles supported by TensorRT engine: {num_profiles}"
        )
    return index


def group_profiles(group: Any, num_profiles: int, model: str) -> tuple[int, ...]:
    """The sorted, distinct profile indices of one instance group; ``(0,)`` when it lists none."""
    names = list(group.profile)
    if not names:
        return (0,)
    return tuple(sorted({parse_profile_name(str(n), num_profiles, model) for n in names}))


def instance_profiles(config: Any, group_name: str, num_profiles: int) -> tuple[int, ...]:
    """The profiles of the instance group called ``group_name`` (the kernel names unnamed groups
    ``<model>_<index>``); ``(0,)`` when the group is not found or lists none."""
    for index, group in enumerate(config.instance_group):
        if (group.name or f"{config.name}_{index}") == group_name:
            return group_profiles(group, num_profiles, config.name)
    return (0,)


def configured_profiles(config: Any, num_profiles: int) -> tuple[int, ...]:
    """Every profile any instance group lists, ``(0,)`` when none lists any (auto-complete's view)."""
    indices: set[int] = set()
    for group in config.instance_group:
        if group.profile:
            indices.update(group_profiles(group, num_profiles, config.name))
    return tuple(sorted(indices)) or (0,)


def select_profile(
    candidates: Sequence[tuple[int, Mapping[str, ProfileRange]]], shapes: Mapping[str, Shape]
) -> int:
    """The index of the candidate profile serving ``shapes`` (input name -> full shape, batch included),
    by the rule in the module docstring. ``candidates`` are (profile index, ranges by input name)."""
    if len(candidates) == 1 and _fits(candidates[0][1], shapes):
        return candidates[0][0]
    best: tuple[int, int] | None = None
    for index, ranges in candidates:
        if not _fits(ranges, shapes):
            continue
        distance = sum(ranges[name].distance(shape) for name, shape in shapes.items() if name in ranges)
        if best is None or distance < best[0] or (distance == best[0] and index < best[1]):
            best = (distance, index)
    if best is None:
        raise TritiumError.invalid_arg(_no_profile_message(candidates, shapes))
    return best[1]


def _fits(ranges: Mapping[str, ProfileRange], shapes: Mapping[str, Shape]) -> bool:
    return all(name not in ranges or ranges[name].holds(shape) for name, shape in shapes.items())


def _no_profile_message(
    candidates: Iterable[tuple[int, Mapping[str, ProfileRange]]], shapes: Mapping[str, Shape]
) -> str:
    requested = ", ".join(f"{name} {_text(shape)}" for name, shape in sorted(shapes.items()))
    allowed = "; ".join(
        f"profile {index}: " + ", ".join(f"{name} {r.describe()}" for name, r in sorted(ranges.items()))
        for index, ranges in candidates
    )
    return (
        f"failed to find any Optimization Profile to support the requested dimensions ({requested}); "
        f"allowed: {allowed}"
    )
