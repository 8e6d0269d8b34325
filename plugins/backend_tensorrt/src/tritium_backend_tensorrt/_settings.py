"""The TensorRT backend's settings: ``--backend-config=tensorrt,...`` and a model's config.

Backend settings (Triton's names):

- ``plugins``: TensorRT plugin libraries to load before any engine, separated by ``;``;
- ``version-compatible``: allow version-compatible engines, whose lean runtime runs host code from the plan
  file (trust the model files);
- ``coalesce-request-input`` and ``execution-policy`` (``DEVICE_BLOCKING``/``BLOCKING``): accepted and
  checked for Triton compatibility; they change nothing here (the kernel hands each instance one contiguous
  batch on a thread of its own).

Model settings: ``parameters { key: "execution_context_allocation_strategy" }`` (``STATIC`` default or
``ON_PROFILE_CHANGE``) and ``optimization { cuda { graphs: true graph_spec [...] } }``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tritium import ConfigError
from tritium.config import parse_bool_value

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_TRUE = ("true", "on", "1", "yes")
_FALSE = ("false", "off", "0", "no")
_POLICIES = ("DEVICE_BLOCKING", "BLOCKING")
_STRATEGIES = ("STATIC", "ON_PROFILE_CHANGE")


def parse_bool(value: str, what: str) -> bool:
    """Triton's boolean spellings (and yes/no), any case; ConfigError naming ``what`` otherwise."""
    return parse_bool_value(value, what, true_words=_TRUE, false_words=_FALSE)


@attrs.define(frozen=True, slots=True)
class BackendSettings:
    """``--backend-config=tensorrt,<key>=<value>`` settings; unknown keys (global ones) are ignored."""

    plugins: tuple[str, ...] = ()
    version_compatible: bool = False
    coalesce_request_input: bool = False
    execution_policy: str = "DEVICE_BLOCKING"

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> BackendSettings:
        policy = options.get("execution-policy", "DEVICE_BLOCKING")
        if policy not in _POLICIES:
            raise ConfigError(
                f"unexpected value '{policy}' for tensorrt backend config 'execution-policy', "
                f"expected one of: {', '.join(_POLICIES)}"
            )
        plugins = tuple(p for p in options.get("plugins", "").split(";") if p.strip())
        return cls(
            plugins=plugins,
            version_compatible=parse_bool(options.get("version-compatible", "false"), "'version-compatible'"),
            coalesce_request_input=parse_bool(
                options.get("coalesce-request-input", "false"), "'coalesce-request-input'"
            ),
            execution_policy=policy,
        )


@attrs.define(frozen=True, slots=True)
class GraphSpec:
    """One CUDA graph to capture: a batch size (0 for a model that does not batch) and the shapes (without
    the batch dimension) of the inputs the config's ``graph_spec`` names."""

    batch_size: int
    inputs: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)


@attrs.define(frozen=True, slots=True)
class ModelSettings:
    """What a model's config asks of its TensorRT instances."""

    allocation_strategy: str = "STATIC"
    cuda_graphs: bool = False
    graph_specs: tuple[GraphSpec, ...] = ()

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelSettings:
        strategy = "STATIC"
        if "execution_context_allocation_strategy" in config.parameters:
            strategy = str(config.parameters["execution_context_allocation_strategy"].string_value)
            if strategy not in _STRATEGIES:
                raise ConfigError(
                    f"Invalid value for 'execution_context_allocation_strategy': '{strategy}' for model "
                    f"'{config.name}'. Supported values are 'STATIC' and 'ON_PROFILE_CHANGE'."
                )
        graphs = config.HasField("optimization") and bool(config.optimization.cuda.graphs)
        specs = graph_specs(config) if graphs else ()
        return cls(allocation_strategy=strategy, cuda_graphs=graphs, graph_specs=specs)


def _batcher_sizes(config: Any) -> set[int] | None:
    """{1} plus the batcher's preferred batch sizes, None for a model with neither batcher."""
    choice = config.WhichOneof("scheduling_choice")
    if choice == "dynamic_batching":
        return {1, *(int(b) for b in config.dynamic_batching.preferred_batch_size)}
    if choice == "sequence_batching" and config.sequence_batching.HasField("oldest"):
        return {1, *(int(b) for b in config.sequence_batching.oldest.preferred_batch_size)}
    return None


def graph_specs(config: ModelConfig) -> tuple[GraphSpec, ...]:
    """The graphs to capture, as Triton chooses them.

    With ``graph_spec`` entries: exactly those. Without: batch sizes 1 and the preferred batch sizes of
    the dynamic (or sequence ``oldest``) batcher, or else 1, 2, 3, 4, 6, 8, 12 and 16; plus
    ``max_batch_size``; sizes above ``max_batch_size`` are dropped; a model that does not batch gets one
    graph (batch size 0).
    """
    cuda = config.optimization.cuda
    if len(cuda.graph_spec):
        return tuple(
            GraphSpec(
                batch_size=int(spec.batch_size),
                inputs={name: tuple(int(d) for d in shape.dim) for name, shape in spec.input.items()},
            )
            for spec in cuda.graph_spec
        )
    max_batch = int(config.max_batch_size)
    if max_batch == 0:
        return (GraphSpec(batch_size=0),)
    sizes = _batcher_sizes(config) or {1, 2, 3, 4, 6, 8, 12, 16}
    sizes.add(max_batch)
    return tuple(GraphSpec(batch_size=b) for b in sorted(sizes) if 0 < b <= max_batch)
