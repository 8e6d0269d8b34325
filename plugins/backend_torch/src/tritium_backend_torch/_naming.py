"""Triton's rules binding a TorchScript model's config tensors to ``forward``'s arguments and results.

Inputs (first rule that every config input satisfies wins):

1. ``forward`` takes a single ``Dict[str, Tensor]``: each config input is a key of that dict.
2. every config input is named after an argument of ``forward``: it is passed as that argument;
3. every config input is named ``<name>__<index>`` (``INPUT__0``): it is the ``index``-th argument;
4. otherwise inputs are passed in the order the config lists them.

Outputs: ``<name>__<index>`` names pick the ``index``-th element of the returned tuple; otherwise outputs
are taken in config order. ``<index>`` is what follows the first ``__`` and must be all digits.

This module is pure Python (no torch): the rules are tested with hypothesis on their own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import attrs

from tritium import ConfigError

DELIMITER = "__"


class Convention(enum.Enum):
    """How config names map to positions (Triton's ``NamingConvention``)."""

    DICT = "dict"
    FORWARD_ARGUMENT = "forward_argument"
    NAMED_INDEX = "named_index"
    CONFIG_ORDER = "config_order"


@attrs.define(frozen=True, slots=True)
class Binding:
    """The positions of a model's config tensors: ``positions[name]`` is the argument (or result) index;
    for ``Convention.DICT`` inputs the name is the dict key and positions are the config order."""

    convention: Convention
    positions: Mapping[str, int]


def named_index(name: str) -> int | None:
    """The ``<index>`` of a ``<name>__<index>`` tensor name, None when the name does not follow the rule."""
    start = name.find(DELIMITER)
    if start < 0:
        return None
    suffix = name[start + len(DELIMITER) :]
    return int(suffix) if suffix.isdigit() and suffix.isascii() else None


def bind_inputs(
    model_name: str, config_inputs: Sequence[str], arguments: Sequence[str], *, dict_input: bool
) -> Binding:
    """Bind config inputs to ``forward``'s ``arguments`` (names without ``self``).

    ConfigError when the counts differ (Triton's message), or when an index points past the arguments or
    two inputs land on one argument.
    """
    if not config_inputs:
        raise ConfigError("model configuration must contain at least one input, none were specified.")
    if dict_input:
        return Binding(Convention.DICT, {name: i for i, name in enumerate(config_inputs)})
    if len(arguments) != len(config_inputs):
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects {len(config_inputs)} inputs, "
            f"model provides {len(arguments)}"
        )
    if all(name in arguments for name in config_inputs):
        return Binding(Convention.FORWARD_ARGUMENT, {name: arguments.index(name) for name in config_inputs})
    indexes = [named_index(name) for name in config_inputs]
    if all(index is not None for index in indexes):
        positions = {name: index for name, index in zip(config_inputs, indexes, strict=True) if index is not None}
        _check_positions(model_name, "input", positions, len(arguments), "arguments of forward")
        return Binding(Convention.NAMED_INDEX, positions)
    return Binding(Convention.CONFIG_ORDER, {name: i for i, name in enumerate(config_inputs)})


def bind_outputs(model_name: str, config_outputs: Sequence[str]) -> Binding:
    """Bind config outputs to positions of ``forward``'s result (checked against the result when it runs)."""
    if not config_outputs:
        raise ConfigError("model configuration must contain at least one output, none were specified.")
    indexes = [named_index(name) for name in config_outputs]
    if all(index is not None for index in indexes):
        return Binding(
            Convention.NAMED_INDEX,
            {name: index for name, index in zip(config_outputs, indexes, strict=True) if index is not None},
        )
    return Binding(Convention.CONFIG_ORDER, {name: i for i, name in enumerate(config_outputs)})


def _check_positions(model_name: str, kind: str, positions: Mapping[str, int], count: int, what: str) -> None:
    taken: dict[int, str] = {}
    for name, index in positions.items():
        if index >= count:
            raise ConfigError(
                f"{kind} '{name}' of model '{model_name}' names index {index}, but the model has {count} {what}"
            )
        if index in taken:
            raise ConfigError(
                f"{kind}s '{taken[index]}' and '{name}' of model '{model_name}' both name index {index}"
            )
        taken[index] = name
