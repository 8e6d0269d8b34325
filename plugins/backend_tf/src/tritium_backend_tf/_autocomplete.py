"""Auto-completion of a model configuration from a SavedModel signature, and the check that a config fits
the model.

The rules are those of Triton's TensorFlow backend (GraphDefs carry no signature, so they are never
completed):

- The model can batch when every signature input and output has a known rank and a variable first
  dimension. A config that sets a non-zero ``max_batch_size`` for a model that cannot batch is an error.
- When the model can batch and the config sets no ``max_batch_size``, the tensors the config lists with dims
  decide (a tensor whose rank is one more than its dims means batching; contradicting hints are an error);
  without hints the model batches. A batching model then gets the backend's ``default-max-batch-size``
  (4 unless ``--backend-config=tensorflow,default-max-batch-size=N`` says otherwise); when that is above 1
  and the config names no scheduler, ``dynamic_batching {}`` is switched on.
- Inputs and outputs the config does not list are filled from the signature (all of them when the config
  lists none of that kind); a listed tensor missing its ``data_type`` or ``dims`` gets them from the
  signature; nothing the config sets is overwritten. A tensor of rank 0 (or unknown rank) cannot be
  auto-completed; a batching model's tensor of shape ``[-1]`` becomes ``dims: [1]`` with ``reshape: {}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tritium import ConfigError
from tritium.config import enum_name, set_enum, shape_string
from tritium_backend_tf._dtypes import config_type_name, datatype_of, tf_type_name
from tritium_backend_tf._signature import ModelSignature, TensorInfo

if TYPE_CHECKING:
    from tritium.config import ModelConfig


def auto_complete(
    config: ModelConfig, signature: ModelSignature, *, model_name: str, default_max_batch_size: int
) -> ModelConfig:
    """A copy of ``config`` completed from a SavedModel ``signature``; ConfigError on contradictions."""
    completed = type(config)()
    completed.CopyFrom(config)
    batching = _complete_batching(completed, signature, model_name, default_max_batch_size)
    for field, infos in ((completed.input, signature.inputs), (completed.output, signature.outputs)):
        listed = {tensor.name for tensor in field}
        if not listed:
            for info in infos:
                _set_type(field.add(name=info.name), info, model_name)
        for tensor in field:
            found = next((i for i in infos if i.name == tensor.name), None)
            if found is None:
                continue  # reported by validate()
            if enum_name(tensor, "data_type") == "TYPE_INVALID":
                _set_type(tensor, found, model_name)
            if len(tensor.dims) == 0 and not tensor.HasField("reshape"):
                _set_dims(tensor, found, batching, model_name)
    validate(completed, signature, model_name=model_name)
    return completed


def _complete_batching(
    config: ModelConfig, signature: ModelSignature, model_name: str, default_max_batch_size: int
) -> bool:
    """Fill max_batch_size and the dynamic batcher; True when the model batches."""
    if not signature.batchable:
        if config.max_batch_size > 0:
            raise ConfigError(
                f"unable to autofill for '{model_name}', configuration specified max-batch "
                f"{config.max_batch_size} but model signature does not support batching"
            )
        return False
    if config.max_batch_size > 0:
        return True
    batching = _batching_hint(config, signature, model_name)
    if batching:
        config.max_batch_size = max(default_max_batch_size, 0)
        if config.max_batch_size > 1 and config.WhichOneof("scheduling_choice") is None:
            config.dynamic_batching.SetInParent()
    return batching and config.max_batch_size > 0


def _batching_hint(config: ModelConfig, signature: ModelSignature, model_name: str) -> bool:
    hint: bool | None = None
    for field, lookup in ((config.input, signature.input), (config.output, signature.output)):
        for tensor in field:
            info = lookup(tensor.name)
            if info is None or info.dims is None or not len(tensor.dims):
                continue
            should_batch = len(info.dims) == len(tensor.dims) + 1
            if hint is not None and hint != should_batch:
                raise ConfigError(
                    f"unable to autofill for '{model_name}', model tensor configurations are contradicting "
                    "each other in terms of whether batching is supported"
                )
            hint = should_batch
    return True if hint is None else hint


def _set_type(tensor: Any, info: TensorInfo, model_name: str) -> None:
    if datatype_of(info.tf_type) is None:
        raise ConfigError(
            f"unable to autofill for '{model_name}': model tensor '{info.name}' has TensorFlow type "
            f"{tf_type_name(info.tf_type)}, which has no Triton datatype"
        )
    set_enum(tensor, "data_type", config_type_name(info.tf_type))


def _set_dims(tensor: Any, info: TensorInfo, batching: bool, model_name: str) -> None:
    if not info.dims:
        raise ConfigError(
            f"unable to autofill for '{model_name}': the rank of model tensor '{info.name}' is 0 which is not "
            "supported"
        )
    dims = info.dims[1:] if batching else info.dims
    if dims:
        tensor.dims.extend(dims)
        return
    tensor.dims.append(1)
    tensor.reshape.SetInParent()  # an empty reshape: one scalar per batch element


# ------------------------------------------------------------------------------------------- validation
def validate(config: ModelConfig, signature: ModelSignature, *, model_name: str) -> None:
    """Raise ConfigError when ``config`` does not describe the model (names, datatypes, shapes)."""
    _validate_inputs(config, signature, model_name)
    _validate_outputs(config, signature, model_name)


def _expected_input_count(config: ModelConfig) -> int:
    count = len(config.input) + len(config.batch_input)
    if config.HasField("sequence_batching"):
        count += len(config.sequence_batching.control_input) + len(config.sequence_batching.state)
    return count


def _validate_inputs(config: ModelConfig, signature: ModelSignature, model_name: str) -> None:
    if config.HasField("sequence_batching"):
        for control in config.sequence_batching.control_input:
            if signature.input(control.name) is None:
                raise ConfigError(
                    f"configuration specified sequence control '{control.name}', but model does not provide that "
                    "input"
                )
    expected = _expected_input_count(config)
    if signature.exact and expected != len(signature.inputs):
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects {expected} inputs, model provides "
            f"{len(signature.inputs)}"
        )
    if not signature.exact and expected > len(signature.inputs):
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects {expected} inputs, model provides at "
            f"most {len(signature.inputs)}"
        )
    allowed = ", ".join(sorted(info.name for info in signature.inputs))
    for tensor in config.input:
        info = signature.input(tensor.name)
        if info is None:
            raise ConfigError(f"unexpected inference input '{tensor.name}', allowed inputs are: {allowed}")
        _check_type(tensor, info, "input", model_name)
        if info.dims is None:
            continue
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        if tensor.allow_ragged_batch:
            if info.dims != (-1,):
                raise ConfigError(
                    f"unable to load model '{model_name}', configuration expects model provides input with shape "
                    f"[-1]  for ragged input '{tensor.name}', model provides {shape_string(info.dims)}"
                )
            continue
        _check_dims(model_name, tensor.name, info.dims, dims, config.max_batch_size, exact=False)


def _validate_outputs(config: ModelConfig, signature: ModelSignature, model_name: str) -> None:
    allowed = ", ".join(sorted(info.name for info in signature.outputs))
    batch_outputs = {name for batch_output in config.batch_output for name in batch_output.target_name}
    for tensor in config.output:
        info = signature.output(tensor.name)
        if info is None:
            hint = "" if signature.exact else "a node or tensor of the graph; "
            raise ConfigError(
                f"unexpected inference output '{tensor.name}', allowed outputs are: {hint}{allowed}"
            )
        _check_type(tensor, info, "output", model_name)
        if info.dims is None or tensor.name in batch_outputs:
            continue
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        _check_dims(model_name, tensor.name, info.dims, dims, config.max_batch_size, exact=True)


def _check_type(tensor: Any, info: TensorInfo, kind: str, model_name: str) -> None:
    if info.tf_type == 0:
        return  # a GraphDef node whose type is unknown until run
    expected = enum_name(tensor, "data_type")
    provided = config_type_name(info.tf_type)
    if expected != provided:
        shown = provided if provided != "TYPE_INVALID" else tf_type_name(info.tf_type)
        raise ConfigError(
            f"unable to load model '{model_name}', configuration expects datatype {expected} for {kind} "
            f"'{tensor.name}', model provides {shown}"
        )


def _check_dims(
    model_name: str, name: str, model_dims: Sequence[int], dims: list[int], max_batch_size: int, *, exact: bool
) -> None:
    """Triton's CompareDims: -1 in the model matches anything unless ``exact`` (outputs)."""
    if not model_dims:
        if any(d != 1 for d in dims) or max_batch_size > 0:
            raise ConfigError(
                f"unable to load model '{model_name}', scalar tensor '{name}', should only provide 1 in the model "
                f"configuration when the model doesn't support batching. Model configuration provided: "
                f"{shape_string(dims)}."
            )
        return
    if max_batch_size > 0:
        if model_dims[0] != -1:
            raise ConfigError(
                f"model '{model_name}', tensor '{name}': for the model to support batching the shape should have "
                "at least 1 dimension and the first dimension must be -1; but shape expected by the model is "
                f"{shape_string(model_dims)}"
            )
        full = [-1, *dims]
    else:
        full = dims
    if not _dims_match(model_dims, full, exact):
        batch_note = (
            " (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, "
            f"making complete shape {shape_string(full)})" if max_batch_size > 0 else f" (shape {shape_string(full)})"
        )
        raise ConfigError(
            f"model '{model_name}', tensor '{name}': the model expects {len(model_dims)} dimensions (shape "
            f"{shape_string(model_dims)}) but the model configuration specifies {len(full)} dimensions"
            f"{batch_note}"
        )


def _dims_match(model_dims: Sequence[int], dims: Sequence[int], exact: bool) -> bool:
    if len(model_dims) != len(dims):
        return False
    return all(m == d for m, d in zip(model_dims, dims, strict=True) if exact or m != -1)
