"""Auto-completion of a model configuration from an ONNX graph, and the check that a config fits the graph.

The rules are those of Triton's onnxruntime backend:

- A config that lists both inputs and outputs is not auto-completed (max_batch_size and the scheduler are
  left as written). Otherwise the side that is missing is filled from the graph, in graph order.
- The model can batch when every input and output has a variable first dimension. Then a max_batch_size of
  0 (or none) becomes the backend's ``default-max-batch-size`` (4 unless ``--backend-config`` says
  otherwise), the first dimension is left out of the filled ``dims``, and when max_batch_size ends up above
  1 and the config names no scheduler, ``dynamic_batching {}`` is switched on. A model that cannot batch
  with a non-zero max_batch_size is an error.
- A scalar graph tensor gets ``dims: [1]``, plus ``reshape: { shape: [] }`` when the model batches.

Beyond Triton, a listed tensor that leaves its ``data_type`` or ``dims`` out gets them from the graph (Triton
would reject such a config). Nothing that the config sets is ever overwritten: a contradiction between
config and graph is a :class:`tritium.ConfigError` naming the tensor and the mismatch, with Triton's wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tritium import ConfigError
from tritium.config import enum_name, set_enum, shape_string
from tritium_backend_onnx._dtypes import config_type_name, datatype_of
from tritium_backend_onnx._signature import ModelSignature, TensorInfo

if TYPE_CHECKING:
    from tritium.config import ModelConfig

DEFAULT_MAX_BATCH_SIZE = 4
"""Triton's default for ``--backend-config=onnxruntime,default-max-batch-size=N``."""


def auto_complete(
    config: ModelConfig,
    signature: ModelSignature,
    *,
    model_name: str,
    default_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> ModelConfig:
    """A copy of ``config`` completed from ``signature``; raises ConfigError on contradictions."""
    completed = type(config)()
    completed.CopyFrom(config)
    has_inputs = len(completed.input) + len(completed.batch_input) > 0
    has_outputs = len(completed.output) > 0
    if not (has_inputs and has_outputs):
        _complete_max_batch_size(completed, signature, model_name, default_max_batch_size)
        if not has_inputs:
            _add_tensors(completed.input, signature.inputs, completed.max_batch_size, "input")
        if not has_outputs:
            _add_tensors(completed.output, signature.outputs, completed.max_batch_size, "output")
    _fill_listed(completed, signature)
    validate(completed, signature, model_name=model_name)
    return completed


def validate(config: ModelConfig, signature: ModelSignature, *, model_name: str) -> None:
    """Raise ConfigError when ``config`` does not describe the graph (names, datatypes, shapes)."""
    _validate_inputs(config, signature, model_name)
    _validate_outputs(config, signature, model_name)


# ------------------------------------------------------------------------------------------- completion
def _complete_max_batch_size(
    config: ModelConfig, signature: ModelSignature, model_name: str, default_max_batch_size: int
) -> None:
    if signature.batchable:
        if config.max_batch_size == 0:
            config.max_batch_size = max(default_max_batch_size, 0)
        if config.max_batch_size > 1 and config.WhichOneof("scheduling_choice") is None:
            config.dynamic_batching.SetInParent()
    elif config.max_batch_size != 0:
        raise ConfigError(
            f"autofill failed for model '{model_name}': model does not support batching while non-zero "
            "max_batch_size is specified"
        )


def _add_tensors(field: Any, infos: Sequence[TensorInfo], max_batch_size: int, kind: str) -> None:
    for info in infos:
        tensor = field.add()
        tensor.name = info.name
        _set_type(tensor, info, kind)
        _set_dims(tensor, info, max_batch_size)


def _fill_listed(config: ModelConfig, signature: ModelSignature) -> None:
    for kind, field, lookup in (
        ("input", config.input, signature.input),
        ("output", config.output, signature.output),
    ):
        for tensor in field:
            info = lookup(tensor.name)
            if info is None:
                continue  # reported by validate()
            if enum_name(tensor, "data_type") == "TYPE_INVALID":
                _set_type(tensor, info, kind)
            if len(tensor.dims) == 0 and not tensor.HasField("reshape"):
                _set_dims(tensor, info, config.max_batch_size)


def _set_type(tensor: Any, info: TensorInfo, kind: str) -> None:
    if datatype_of(info.ort_type) is None:
        raise ConfigError(
            f"unsupported ONNX type '{info.ort_type}' of model {kind} '{info.name}': Triton has no "
            "datatype for it"
        )
    set_enum(tensor, "data_type", config_type_name(info.ort_type))


def _set_dims(tensor: Any, info: TensorInfo, max_batch_size: int) -> None:
    dims = info.dims[1:] if max_batch_size > 0 else info.dims
    if dims:
        tensor.dims.extend(dims)
        return
    tensor.dims.append(1)
    if max_batch_size > 0:
        tensor.reshape.SetInParent()  # an empty reshape: a scalar per batch element


# ------------------------------------------------------------------------------------------- validation
def _validate_inputs(config: ModelConfig, signature: ModelSignature, model_name: str) -> None:
    expected = sum(1 for tensor in config.input if not tensor.optional) + len(config.batch_input)
    if config.HasField("sequence_batching"):
        expected += len(config.sequence_batching.control_input) + len(config.sequence_batching.state)
    if expected != len(signature.inputs):
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects {expected} inputs, model provides "
            f"{len(signature.inputs)}"
        )
    allowed = sorted(info.name for info in (*signature.inputs, *signature.overridable))
    for tensor in config.input:
        if tensor.optional and config.max_batch_size != 0:
            raise ConfigError(
                f"unable to load model '{model_name}', optional input '{tensor.name}' is not supported for "
                "models that support batching"
            )
        info = signature.input(tensor.name)
        if info is None:
            raise ConfigError(
                f"unexpected inference input '{tensor.name}', allowed inputs are: {', '.join(allowed)}"
            )
        _check_type(tensor, info, "input", model_name)
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        if tensor.allow_ragged_batch:
            if info.dims != (-1,):
                raise ConfigError(
                    f"unable to load model '{model_name}', configuration expects model provides input with "
                    f"shape [-1] for ragged input '{tensor.name}', model provides {shape_string(info.dims)}"
                )
            continue
        _check_dims(model_name, tensor.name, info.dims, dims, config.max_batch_size, exact=False)


def _validate_outputs(config: ModelConfig, signature: ModelSignature, model_name: str) -> None:
    allowed = sorted(info.name for info in signature.outputs)
    batch_outputs = {name for batch_output in config.batch_output for name in batch_output.target_name}
    for tensor in config.output:
        info = signature.output(tensor.name)
        if info is None:
            raise ConfigError(
                f"unexpected inference output '{tensor.name}', allowed outputs are: {', '.join(allowed)}"
            )
        _check_type(tensor, info, "output", model_name)
        if tensor.name in batch_outputs:
            continue  # a batch output's shape need not match the model
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        _check_dims(model_name, tensor.name, info.dims, dims, config.max_batch_size, exact=True)


def _check_type(tensor: Any, info: TensorInfo, kind: str, model_name: str) -> None:
    expected = enum_name(tensor, "data_type")
    provided = config_type_name(info.ort_type)
    if expected != provided:
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects datatype {expected} for {kind} "
            f"'{tensor.name}', model provides {provided}"
        )


def _check_dims(
    model_name: str,
    name: str,
    model_dims: tuple[int, ...],
    dims: list[int],
    max_batch_size: int,
    *,
    exact: bool,
) -> None:
    """Triton's CompareDimsSupported; -1 in the model matches anything unless ``exact`` (outputs)."""
    if not model_dims:
        if any(d != 1 for d in dims):
            raise ConfigError(
                f"unable to load model '{model_name}', scalar tensor '{name}', should only provide 1 in the "
                "model configuration when the model doesn't support batching. Model configuration "
                f"provided: {shape_string(dims)}."
            )
        return
    if max_batch_size > 0:
        if model_dims[0] != -1:
            raise ConfigError(
                f"model '{model_name}', tensor '{name}': for the model to support batching the shape should "
                "have at least 1 dimension and the first dimension must be -1; but shape expected by the "
                f"model is {shape_string(model_dims)}"
            )
        full = [-1, *dims]
        if not _dims_match(model_dims, full, exact):
            raise ConfigError(
                f"model '{model_name}', tensor '{name}': the model expects {len(model_dims)} dimensions "
                f"(shape {shape_string(model_dims)}) but the model configuration specifies {len(full)} "
                "dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit "
                f"tensor shape, making complete shape {shape_string(full)})"
            )
    elif not _dims_match(model_dims, dims, exact):
        raise ConfigError(
            f"model '{model_name}', tensor '{name}': the model expects {len(model_dims)} dimensions (shape "
            f"{shape_string(model_dims)}) but the model configuration specifies {len(dims)} dimensions "
            f"(shape {shape_string(dims)})"
        )


def _dims_match(model_dims: Sequence[int], dims: Sequence[int], exact: bool) -> bool:
    if len(model_dims) != len(dims):
        return False
    return all(m == d for m, d in zip(model_dims, dims, strict=True) if exact or m != -1)
