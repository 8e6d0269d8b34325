"""Auto-complete of a ``tensorrt_plan`` model's configuration from its engine, following Triton's rules.

- The first dimension of every input is taken for the batch dimension. The engine's max batch size is, over
  the profiles the instance groups list (profile 0 when none), the largest of each profile's smallest
  ``max`` first dimension.
- Dims given in the config are a hint: a tensor whose engine rank is one more than its config dims says
  "batching"; equal rank says "no batching". Tensors disagreeing is an error; config dims saying "no
  batching" make ``max_batch_size`` 0; saying "batching" for an engine that cannot batch is an error.
- ``max_batch_size`` 0 (unset) becomes the engine's; a larger value than the engine allows is an error.
  An engine batching more than 1 gets ``dynamic_batching {}`` unless a batcher is configured.
- Inputs and outputs the config leaves out are filled from the engine (all of them when it lists none):
  data type, dims (without the batch dimension when the model batches; a scalar becomes ``dims: [1]`` with
  ``reshape: { shape: [] }``), ``is_shape_tensor`` and ``is_non_linear_format_io``. Anything set stays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tritium import ConfigError
from tritium_backend_tensorrt._engine import EngineInfo, TensorInfo
from tritium_backend_tensorrt._profiles import configured_profiles

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_TYPE_INVALID = 0


def _config_dims(tensor: Any) -> list[int]:
    return list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)


def _check_names(config: ModelConfig, info: EngineInfo) -> None:
    for kind, tensors, allowed in (
        ("input", config.input, info.inputs),
        ("output", config.output, info.outputs),
    ):
        names = {t.name for t in allowed}
        for tensor in tensors:
            if tensor.name not in names:
                raise ConfigError(
                    f"unable to load model '{config.name}': unexpected inference {kind} '{tensor.name}', "
                    f"allowed {kind}s are: {', '.join(t.name for t in allowed)}"
                )


def _batch_hint(config: ModelConfig, info: EngineInfo) -> tuple[bool | None, int]:
    """(True/False when config dims say batching or not, None without a hint; tensors with config dims)."""
    votes: set[bool] = set()
    with_dims = 0
    tensors: list[Any] = [*config.input, *config.output]
    for tensor in tensors:
        if getattr(tensor, "allow_ragged_batch", False):
            votes.add(True)
            continue
        dims = _config_dims(tensor)
        engine_tensor = info.tensor(tensor.name)
        if not dims or engine_tensor is None:
            continue
        with_dims += 1
        votes.add(len(engine_tensor.shape) == len(dims) + 1)
    if len(votes) > 1:
        raise ConfigError(
            f"unable to autofill for '{config.name}', model tensor configurations are contradicting each "
            "other in terms of whether batching is supported"
        )
    return (next(iter(votes)) if votes else None), with_dims


def _fill_tensor(target: Any, ref: TensorInfo, batching: bool, model: str) -> None:
    if target.data_type == _TYPE_INVALID and ref.datatype is not None:
        target.data_type = ref.datatype.config_enum
    if not len(target.dims):
        shape = list(ref.shape[1:] if batching else ref.shape)
        if shape:
            target.dims.extend(shape)
        else:
            target.dims.append(1)
            if not target.HasField("reshape"):
                target.reshape.SetInParent()
    if target.is_shape_tensor and not ref.is_shape_tensor:
        raise ConfigError(f"model '{model}': '{ref.name}' is incorrectly specified as a shape tensor.")
    if ref.is_shape_tensor:
        target.is_shape_tensor = True
    if target.is_non_linear_format_io and ref.linear_format:
        raise ConfigError(
            f"model '{model}': '{ref.name}' uses a linear IO format, but 'is_non_linear_format_io' is "
            "incorrectly set to true in the model configuration."
        )
    if not ref.linear_format:
        target.is_non_linear_format_io = True


def _fill_io(config: ModelConfig, field: str, refs: tuple[TensorInfo, ...], batching: bool) -> None:
    tensors = getattr(config, field)
    if not len(tensors):
        for ref in refs:
            _fill_tensor(tensors.add(name=ref.name.split(" ", 1)[0]), ref, batching, config.name)
        return
    by_name = {ref.name: ref for ref in refs}
    for tensor in tensors:
        if tensor.name in by_name:
            _fill_tensor(tensor, by_name[tensor.name], batching, config.name)


def complete_config(config: ModelConfig, info: EngineInfo) -> ModelConfig:
    """A completed copy of ``config`` (never mutated) for the engine described by ``info``."""
    completed = type(config)()
    completed.CopyFrom(config)
    _check_names(completed, info)
    hint, with_dims = _batch_hint(completed, info)
    engine_max = info.max_batch_size(configured_profiles(completed, len(info.profiles)))
    if hint is True and engine_max == 0:
        raise ConfigError(
            f"autofill failed for model '{completed.name}': model tensor shape configuration hints for "
            "dynamic batching but the underlying engine doesn't support batching."
        )
    if with_dims and hint is not True:
        engine_max = 0
    if completed.max_batch_size == 0:
        completed.max_batch_size = engine_max
    elif completed.max_batch_size > engine_max:
        raise ConfigError(
            f"autofill failed for model '{completed.name}': configuration specified max-batch "
            f"{completed.max_batch_size} but TensorRT engine only supports max-batch {engine_max}"
        )
    if engine_max > 1 and completed.WhichOneof("scheduling_choice") is None:
        completed.dynamic_batching.SetInParent()
    batching = completed.max_batch_size > 0
    _fill_io(completed, "input", info.inputs, batching)
    _fill_io(completed, "output", info.outputs, batching)
    return completed
