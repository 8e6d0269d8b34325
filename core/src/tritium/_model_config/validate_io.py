"""Validation of inputs, outputs, batch inputs and batch outputs, with Triton's messages (its
``ValidateModelIOConfig``, which appends `` for <model>`` to each).

Tritium adds one check Triton lacks: input and output names must be unique (Triton silently keeps the first of
two equal names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tritium._model_config.backend import TENSORRT_PLATFORM
from tritium._model_config.errors import Problem
from tritium.proto.model_config_pb2 import BatchInput, BatchOutput, DataType, ModelConfig, ModelInput, ModelOutput

WILDCARD_DIM = -1
INT64_MAX = 2**63 - 1


def validate_io(config: ModelConfig) -> None:
    """Inputs, outputs and batch inputs/outputs; Triton appends `` for <model>`` to these messages."""
    suffix = f" for {config.name}"
    try:
        for index, tensor in enumerate(config.input):
            _check_input(tensor, f"input[{index}]", config.max_batch_size, config.platform)
        for index, output in enumerate(config.output):
            _check_output(output, f"output[{index}]", config.max_batch_size, config.platform)
        _check_batch_io(config)
        _check_unique("input", "model input", config.input)
        _check_unique("output", "model output", config.output)
    except Problem as problem:
        raise Problem(problem.field, problem.detail + suffix) from None


def _check_unique(field: str, what: str, tensors: Iterable[ModelInput | ModelOutput]) -> None:
    seen: set[str] = set()
    for index, tensor in enumerate(tensors):
        if tensor.name in seen:
            raise Problem(f"{field}[{index}].name", f"{what} '{tensor.name}' is specified more than once")
        seen.add(tensor.name)


def _check_input(tensor: ModelInput, field: str, max_batch_size: int, platform: str) -> None:
    _check_shape(tensor, field, max_batch_size, "model input ")
    if tensor.format in (ModelInput.FORMAT_NHWC, ModelInput.FORMAT_NCHW) and len(tensor.dims) != 3:
        raise Problem(f"{field}.dims", "model input NHWC/NCHW require 3 dims")
    _check_trt_only(tensor, field, platform, "input")


def _check_output(tensor: ModelOutput, field: str, max_batch_size: int, platform: str) -> None:
    _check_shape(tensor, field, max_batch_size, "model output ")
    _check_trt_only(tensor, field, platform, "output")


def _check_trt_only(tensor: ModelInput | ModelOutput, field: str, platform: str, io: str) -> None:
    if platform != TENSORRT_PLATFORM and tensor.is_shape_tensor:
        raise Problem(f"{field}.is_shape_tensor", "shape tensors are only supported for TensorRT platform")
    if tensor.is_non_linear_format_io:
        if platform != TENSORRT_PLATFORM:
            raise Problem(
                f"{field}.is_non_linear_format_io",
                "Non-linear IO format is only supported for the TensorRT platform",
            )
        if len(tensor.dims) != 3:
            raise Problem(f"{field}.dims", f"Non-linear IO format {io} requires 3 dims")


def _check_shape(tensor: ModelInput | ModelOutput, field: str, max_batch_size: int, prefix: str) -> None:
    """Triton's ValidateIOShape: name, data type, dims, reshape."""
    if not tensor.name:
        raise Problem(f"{field}.name", f"{prefix}must specify 'name'")
    prefix = f"{prefix}'{tensor.name}' "
    if tensor.data_type == DataType.TYPE_INVALID:
        raise Problem(f"{field}.data_type", f"{prefix}must specify 'data_type'")
    if not tensor.dims:
        raise Problem(f"{field}.dims", f"{prefix}must specify 'dims'")
    has_reshape = tensor.HasField("reshape")
    if has_reshape and not tensor.reshape.shape and max_batch_size == 0:
        raise Problem(
            f"{field}.reshape",
            f"{prefix}cannot have empty reshape for non-batching model as scalar tensors are not supported",
        )
    if any(d < 1 and d != WILDCARD_DIM for d in tensor.dims):
        raise Problem(
            f"{field}.dims",
            f"{prefix}dimension must be integer >= 1, or {WILDCARD_DIM} to indicate a variable-size dimension",
        )
    if has_reshape:
        _check_reshape(tensor.dims, tensor.reshape.shape, tensor.name, f"{field}.reshape", prefix)


def _check_reshape(dims: Sequence[int], shape: Sequence[int], name: str, field: str, prefix: str) -> None:
    if any(d < 1 and d != WILDCARD_DIM for d in shape):
        raise Problem(
            f"{field}.shape",
            f"{prefix}reshape dimensions must be integer >= 1, or {WILDCARD_DIM} to indicate a variable-size dimension",
        )
    dims_size = _element_count(dims, f"{name} dims", field)
    reshape_size = _element_count(shape, f"{name} reshape", field)
    if dims_size != reshape_size and (reshape_size != 0 or dims_size != 1):
        raise Problem(field, f"{prefix}has different size for dims and reshape")
    if dims_size == WILDCARD_DIM:
        dims_chunks, shape_chunks = _fixed_chunks(dims), _fixed_chunks(shape)
        if len(dims_chunks) != len(shape_chunks):
            raise Problem(field, f"{prefix}has different number of variable-size dimensions for dims and reshape")
        if dims_chunks != shape_chunks:
            raise Problem(field, f"{prefix}has different size for dims and reshape")


def _element_count(dims: Sequence[int], name: str, field: str) -> int:
    """Triton's GetElementCount: -1 with a wildcard, 0 for no dims, else the product (checked for overflow)."""
    if WILDCARD_DIM in dims:
        return WILDCARD_DIM
    count = 0
    for index, dim in enumerate(dims):
        count = dim if index == 0 else count * dim
        if count > INT64_MAX:
            raise Problem(field, f"element count for tensor '{name}' exceeds maximum size of {INT64_MAX}")
    return count


def _fixed_chunks(dims: Sequence[int]) -> list[int]:
    """Element counts of the runs of fixed dims between wildcards: [2, 4, -1, 6] -> [8, 6]."""
    chunks, current = [], 1
    for dim in dims:
        if dim == WILDCARD_DIM:
            chunks.append(current)
            current = 1
        else:
            current *= dim
    chunks.append(current)
    return chunks


def _check_batch_io(config: ModelConfig) -> None:
    inputs = {tensor.name for tensor in config.input}
    outputs = {tensor.name for tensor in config.output}
    for index, batch_input in enumerate(config.batch_input):
        where = f"batch_input[{index}]"
        _check_kind_and_source_count(batch_input, where, "batch input")
        if batch_input.data_type not in (DataType.TYPE_INT32, DataType.TYPE_FP32):
            raise Problem(f"{where}.data_type", "batch input data type must be TYPE_INT32 or TYPE_FP32")
        _check_sources(batch_input.source_input, inputs, where)
    for index, batch_output in enumerate(config.batch_output):
        where = f"batch_output[{index}]"
        _check_kind_and_source_count(batch_output, where, "batch output")
        _check_sources(batch_output.source_input, inputs, where)
        targets: set[str] = set()
        for target in batch_output.target_name:
            if target not in outputs:
                raise Problem(f"{where}.target_name", f"unknown target output name '{target}'")
            if target in targets:
                raise Problem(f"{where}.target_name", f"target output name '{target}' can only be specified once")
            targets.add(target)


def _check_kind_and_source_count(item: BatchInput | BatchOutput, where: str, noun: str) -> None:
    """A batch input's or output's ``kind`` is known and it names exactly one ``source_input``."""
    kinds = item.Kind
    if item.kind not in kinds.values():
        raise Problem(f"{where}.kind", f"unknown {noun} kind ''")
    if len(item.source_input) != 1:
        raise Problem(
            f"{where}.source_input",
            f"{noun} kind '{kinds.Name(item.kind)}' expects 1 source input, got {len(item.source_input)}",
        )


def _check_sources(sources: Iterable[str], inputs: set[str], where: str) -> None:
    for source in sources:
        if source not in inputs:
            raise Problem(f"{where}.source_input", f"unknown source input name '{source}'")
