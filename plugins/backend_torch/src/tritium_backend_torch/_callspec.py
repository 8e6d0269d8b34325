"""Names of an AOTInductor package's inputs and outputs, from its call specification.

``loader.get_call_spec()`` returns two serialized pytree specs: the inputs, always the pair ``(args,
kwargs)``, and the result. Their leaves, in flattening order, are the tensors the compiled model takes and
returns. Triton names each leaf two ways:

- ordinal: ``INPUT__<i>`` / ``OUTPUT__<i>``, ``i`` the leaf's position;
- forward-based: ``ARGS[0]``, ``ARGS[2][key]``, ``KWARGS[name]`` for inputs and ``RESULT``, ``RESULT[0]``,
  ``RESULT[key][1]`` for outputs (a result that is a single tensor is ``RESULT``).

Only tuples, lists and dicts of tensors are supported, as in Triton. Pure Python: no torch needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tritium import ConfigError

_ORDINAL = {"input": re.compile(r"INPUT__(\d+)"), "output": re.compile(r"OUTPUT__(\d+)")}
_SEQUENCES = ("builtins.tuple", "builtins.list")
_DICT = "builtins.dict"
_FORBIDDEN_KEY = re.compile(r'["\[\]\s]|[^\x20-\x7e]')


@attrs.define(frozen=True, slots=True)
class CallSpec:
    """The forward-based names of a package's input and output leaves, in flattening order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def from_strings(cls, specs: Sequence[str]) -> CallSpec:
        """Parse ``loader.get_call_spec()``; ConfigError when it is not a supported tree."""
        if len(specs) != 2:
            raise ConfigError(f"the package's call specification has {len(specs)} parts, expected 2")
        in_tree, out_tree = (_load(text) for text in specs)
        if in_tree.get("type") not in _SEQUENCES or len(in_tree.get("children_spec", [])) != 2:
            raise ConfigError("the package's input specification is not the pair (args, kwargs)")
        args, kwargs = in_tree["children_spec"]
        inputs = [*_leaves(args, "ARGS"), *_leaves(kwargs, "KWARGS")]
        outputs = list(_leaves(out_tree, "RESULT"))
        return cls(tuple(inputs), tuple(outputs))

    def bind(self, kind: str, model_name: str, config_names: Sequence[str]) -> dict[str, int]:
        """Map each config tensor (``kind`` "input" or "output") to its leaf position; ConfigError naming the
        valid names for a name that is neither ordinal nor forward-based, and for inputs the model needs
        but the config leaves out."""
        leaves = self.inputs if kind == "input" else self.outputs
        positions: dict[str, int] = {}
        for name in config_names:
            position = self.position(kind, name)
            if position is None:
                raise ConfigError(
                    f"{kind} '{name}' of model '{model_name}' is not in the package's call specification; "
                    f"valid names are {', '.join(_ordinal(kind, i) for i in range(len(leaves)))} or "
                    f"{', '.join(leaves)}"
                )
            if position in positions.values():
                other = next(n for n, p in positions.items() if p == position)
                raise ConfigError(f"{kind}s '{other}' and '{name}' of model '{model_name}' name the same tensor")
            positions[name] = position
        if kind == "input" and len(positions) != len(leaves):
            missing = [f"{_ordinal(kind, i)} ({leaf})" for i, leaf in enumerate(leaves) if i not in positions.values()]
            raise ConfigError(
                f"model '{model_name}' takes {len(leaves)} inputs; the configuration leaves out {', '.join(missing)}"
            )
        return positions

    def position(self, kind: str, name: str) -> int | None:
        """The leaf position ``name`` addresses, None when it addresses none."""
        leaves = self.inputs if kind == "input" else self.outputs
        match = _ORDINAL[kind].fullmatch(name)
        if match is not None:
            index = int(match.group(1))
            return index if index < len(leaves) else None
        return leaves.index(name) if name in leaves else None


def ordinal_name(kind: str, index: int) -> str:
    """``INPUT__<index>`` or ``OUTPUT__<index>``."""
    return _ordinal(kind, index)


def _ordinal(kind: str, index: int) -> str:
    return f"{'INPUT' if kind == 'input' else 'OUTPUT'}__{index}"


def _load(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the package's call specification is not JSON: {exc}") from None
    # A serialized treespec is [protocol, tree]; protocol 1 is the only one PyTorch writes.
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], dict):
        raise ConfigError("the package's call specification is not a serialized pytree")
    tree: dict[str, Any] = value[1]
    return tree


def _leaves(node: Mapping[str, Any], prefix: str) -> list[str]:
    kind = node.get("type")
    children = node.get("children_spec") or []
    if kind is None:
        return [prefix]
    if kind in _SEQUENCES:
        return [leaf for i, child in enumerate(children) for leaf in _leaves(child, f"{prefix}[{i}]")]
    if kind == _DICT:
        keys = json.loads(node.get("context") or "[]")
        if len(keys) != len(children):
            raise ConfigError(f"the package's call specification has a malformed dict at {prefix}")
        out: list[str] = []
        for key, child in zip(keys, children, strict=True):
            if not isinstance(key, str) or _FORBIDDEN_KEY.search(key):
                raise ConfigError(
                    f"dict key {key!r} at {prefix} cannot be addressed: keys must be strings without quotes, "
                    "brackets, whitespace or non-printable characters"
                )
            out.extend(_leaves(child, f"{prefix}[{key}]"))
        return out
    raise ConfigError(
        f"{prefix} of the package is a {kind}: only dict, tuple, list and torch.Tensor values are supported"
    )
