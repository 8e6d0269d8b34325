"""Validation of a normalized model configuration, with Triton's messages.

The checks and their messages are those of Triton's ``ValidateModelConfig``, ``ValidateInstanceGroup`` and
``ValidateModelIOConfig`` (core ``model_config_utils.cc``), in that order; each raises
:class:`~tritium._config_errors.Problem` naming the offending field. Tritium adds one check Triton lacks:
input and output names must be unique (Triton silently keeps the first of two equal names).

Not checked here, because they need more than this config: an ensemble's steps against the configs of the
models they call, and the model file against the config (the backend's auto-complete does that).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tritium._config_backend import (
    ENSEMBLE_PLATFORM,
    LIBTORCH_PLATFORM,
    LIBTORCH_PLATFORM_ALT,
    ONNX_PLATFORM,
    ONNXRUNTIME,
    PYTORCH,
    TENSORFLOW,
    TENSORRT,
    TENSORRT_PLATFORM,
    TF_GRAPHDEF_PLATFORM,
    TF_SAVEDMODEL_PLATFORM,
    TORCH_AOTI_PLATFORM,
)
from tritium._config_ensemble import validate_ensemble
from tritium._config_errors import Problem
from tritium.proto.model_config_pb2 import (
    BatchInput,
    BatchOutput,
    DataType,
    ModelConfig,
    ModelInput,
    ModelInstanceGroup,
    ModelOutput,
    ModelQueuePolicy,
    ModelSequenceBatching,
)

WILDCARD_DIM = -1
INT64_MAX = 2**63 - 1
MIN_COMPUTE_CAPABILITY = 6.0
"""Triton's default ``--min-supported-compute-capability``, quoted in its invalid-GPU message."""

# Backend name -> platforms it may be paired with (Triton's GetBackendType / GetBackendTypeFromPlatform).
# Triton's own table rejects "libtorch" and "torch_aoti" with backend "pytorch" even though its auto-complete
# produces exactly that pair; Tritium accepts them.
_PLATFORMS_OF_BACKEND = {
    TENSORFLOW: (TF_GRAPHDEF_PLATFORM, TF_SAVEDMODEL_PLATFORM),
    TENSORRT: (TENSORRT_PLATFORM,),
    ONNXRUNTIME: (ONNX_PLATFORM,),
    PYTORCH: (LIBTORCH_PLATFORM, LIBTORCH_PLATFORM_ALT, TORCH_AOTI_PLATFORM),
}
_CORRID_TYPES = (DataType.TYPE_UINT64, DataType.TYPE_INT64, DataType.TYPE_UINT32, DataType.TYPE_INT32,
                 DataType.TYPE_STRING)  # fmt: skip
Control = ModelSequenceBatching.Control
_STOI = re.compile(r"\s*([+-]?\d+)")


# ----------------------------------------------------------------------------------- ValidateModelConfig
def validate_model_config(config: ModelConfig) -> None:
    """Everything but instance groups and tensors: platform/backend, batching, scheduling, metrics."""
    name = config.name
    if not name:
        raise Problem("name", "model configuration must specify 'name'")
    _check_platform(config)
    if config.max_batch_size < 0:
        raise Problem("max_batch_size", f"'max_batch_size' must be non-negative value for {name}")
    if not config.HasField("version_policy"):
        raise Problem("version_policy", f"must specify 'version policy' for {name}")
    if config.HasField("dynamic_batching"):
        _check_dynamic_batching(config)
    if config.HasField("sequence_batching"):
        _check_sequence_batching(config)
    if config.HasField("ensemble_scheduling"):
        validate_ensemble(config)
    elif config.platform == ENSEMBLE_PLATFORM:
        raise Problem(
            "ensemble_scheduling",
            f"ensemble scheduling must be set for ensemble {name} whose platform is {ENSEMBLE_PLATFORM}",
        )
    if config.model_transaction_policy.decoupled and config.response_cache.enable:
        raise Problem(
            "response_cache.enable",
            f"Response Cache does not currently support model {name} with 'decoupled' transaction policy. "
            "Please disable the response cache.",
        )
    if config.HasField("model_metrics"):
        _check_model_metrics(config)


def _check_platform(config: ModelConfig) -> None:
    name, platform, backend = config.name, config.platform, config.backend
    if not backend and platform != ENSEMBLE_PLATFORM:
        raise Problem("platform", f"unexpected platform type '{platform}' for {name}")
    if backend and platform == ENSEMBLE_PLATFORM:
        raise Problem(
            "backend",
            f"Ensemble model '{name}' must have platform type '{platform}' and empty backend type",
        )
    allowed = _PLATFORMS_OF_BACKEND.get(backend)
    if allowed is not None and platform not in allowed:
        raise Problem("platform", f"unexpected 'platform' and 'backend' pair, got:{platform}, {backend}")


def _check_dynamic_batching(config: ModelConfig) -> None:
    name, batching = config.name, config.dynamic_batching
    field = "dynamic_batching"
    for size in batching.preferred_batch_size:
        if size <= 0:
            raise Problem(
                f"{field}.preferred_batch_size", f"dynamic batching preferred size must be positive for {name}"
            )
        if size > config.max_batch_size:
            raise Problem(
                f"{field}.preferred_batch_size",
                f"dynamic batching preferred size must be <= max batch size for {name}",
            )
    levels = batching.priority_levels
    if levels != 0:
        if not 1 <= batching.default_priority_level <= levels:
            raise Problem(
                f"{field}.default_priority_level",
                f"default priority level must be in range [1, {levels}] for {name}",
            )
        for level in batching.priority_queue_policy:
            if not 1 <= level <= levels:
                raise Problem(
                    f"{field}.priority_queue_policy",
                    f"priority queue policy must have priority level in range [1, {levels}] for {name}",
                )
    if batching.preserve_ordering:
        if levels > 1:
            raise Problem(
                f"{field}.preserve_ordering",
                f"Only one priority level is allowed when 'preserve_ordering' is true for {name}",
            )
        policies = [("default_queue_policy", batching.default_queue_policy)]
        policies += [(f"priority_queue_policy[{k}]", v) for k, v in batching.priority_queue_policy.items()]
        for where, policy in policies:
            if policy.default_timeout_microseconds != 0 and policy.timeout_action == ModelQueuePolicy.DELAY:
                raise Problem(
                    f"{field}.{where}.timeout_action",
                    f"Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for {name}",
                )


def _check_sequence_batching(config: ModelConfig) -> None:
    name, batcher = config.name, config.sequence_batching
    field = "sequence_batching"
    if config.response_cache.enable:
        raise Problem(
            "response_cache.enable",
            f"Response Cache does not currently support model {name} with sequence batching scheduler. "
            "Please disable the response cache.",
        )
    for kind in (Control.CONTROL_SEQUENCE_START, Control.CONTROL_SEQUENCE_END, Control.CONTROL_SEQUENCE_READY):
        _check_control(batcher, name, kind, boolean=True)
    corrid = _check_control(batcher, name, Control.CONTROL_SEQUENCE_CORRID, boolean=False)
    if corrid is not None and corrid.data_type not in _CORRID_TYPES:
        raise Problem(
            f"{field}.control_input",
            f"unexpected data type for control CONTROL_SEQUENCE_CORRID for {name}. Allowed data types are "
            "TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING",
        )
    if batcher.HasField("oldest"):
        for size in batcher.oldest.preferred_batch_size:
            if size <= 0:
                raise Problem(
                    f"{field}.oldest.preferred_batch_size",
                    f"sequence batching preferred batch size must be positive for {name}",
                )
            if size > config.max_batch_size:
                raise Problem(
                    f"{field}.oldest.preferred_batch_size",
                    f"sequence batching preferred batch size must be <= max batch size for {name}",
                )
    if batcher.HasField("direct"):
        utilization = batcher.direct.minimum_slot_utilization
        if utilization < 0.0 or utilization > 1.0:  # NaN passes, as in Triton
            raise Problem(
                f"{field}.direct.minimum_slot_utilization",
                f"sequence batching minimum slot utilization must be in range (0.0, 1.0] for {name}",
            )


def _check_control(
    batcher: ModelSequenceBatching, name: str, kind: int, *, boolean: bool
) -> ModelSequenceBatching.Control | None:
    """Triton's Get{Boolean,Typed}SequenceControlProperties: the control of ``kind``, if any, checked."""
    kind_name = Control.Kind.Name(kind)
    field = "sequence_batching.control_input"
    seen_tensors: set[str] = set()
    found: ModelSequenceBatching.Control | None = None
    for index, control_input in enumerate(batcher.control_input):
        where = f"{field}[{index}]"
        if not control_input.name:
            raise Problem(f"{where}.name", f"sequence batching control tensor must have a name for {name}")
        if control_input.name in seen_tensors:
            raise Problem(
                f"{where}.name",
                f"sequence batching control tensor '{control_input.name}' is specified for multiple control "
                f"kinds for {name}",
            )
        seen_tensors.add(control_input.name)
        for control in control_input.control:
            if control.kind != kind:
                continue
            if found is not None:
                raise Problem(where, f"sequence batching specifies multiple {kind_name} tensors for {name}")
            found = control
            _check_control_values(control, f"{where}.control", name, kind_name, boolean=boolean)
    return found


def _check_control_values(
    control: ModelSequenceBatching.Control, field: str, name: str, kind_name: str, *, boolean: bool
) -> None:
    lists = {
        "int32_false_true": len(control.int32_false_true),
        "fp32_false_true": len(control.fp32_false_true),
        "bool_false_true": len(control.bool_false_true),
    }
    given = [key for key, size in lists.items() if size]
    if not boolean:
        if given:
            raise Problem(
                f"{field}.{given[0]}",
                "sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or "
                f"'bool_false_true' for {kind_name} for {name}",
            )
        return
    if not given:
        raise Problem(
            field,
            "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or "
            f"'bool_false_true' for {kind_name} for {name}",
        )
    if len(given) > 1:
        raise Problem(
            field,
            "sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and "
            f"'bool_false_true' for {kind_name} for {name}",
        )
    if lists[given[0]] != 2:
        raise Problem(
            f"{field}.{given[0]}",
            f"sequence batching control '{given[0]}' must have exactly 2 entries for {kind_name} for {name}",
        )


def _check_model_metrics(config: ModelConfig) -> None:
    for index, control in enumerate(config.model_metrics.metric_control):
        where = f"model_metrics.metric_control[{index}]"
        if not control.HasField("metric_identifier"):
            raise Problem(where, "metric control must specify 'metric_identifier'")
        if not control.metric_identifier.family:
            raise Problem(f"{where}.metric_identifier.family", "metric identifier must specify non-empty 'family'")
        if not control.HasField("histogram_options"):
            raise Problem(where, "metric control must specify 'histogram_options'")
        if not control.histogram_options.buckets:
            raise Problem(f"{where}.histogram_options.buckets", "histogram options must specify non-empty 'buckets'")


# --------------------------------------------------------------------------------- ValidateInstanceGroup
def validate_instance_groups(config: ModelConfig, gpu_count: int, *, allow_soft_placement: bool) -> None:
    """Groups after normalization: kinds resolved, GPUs that exist, TensorRT-only profiles.

    With ``allow_soft_placement`` a KIND_GPU group may name GPUs this machine lacks (or none at all, when it
    has none): the server then places those instances on the CPU instead of failing the load.
    """
    if config.HasField("ensemble_scheduling"):
        return
    name = config.name
    if not config.instance_group:
        raise Problem("instance_group", f"must specify one or more 'instance group's for {name}")
    for index, group in enumerate(config.instance_group):
        where = f"instance_group[{index}]"
        prefix = f"instance group {group.name} of model {name}"
        kind = group.kind
        if kind in (ModelInstanceGroup.KIND_MODEL, ModelInstanceGroup.KIND_CPU) and group.gpus:
            kind_name = ModelInstanceGroup.Kind.Name(kind)
            raise Problem(f"{where}.gpus", f"{prefix} has kind {kind_name} but specifies one or more GPUs")
        if kind == ModelInstanceGroup.KIND_GPU and not allow_soft_placement:
            _check_gpus(group, where, prefix, gpu_count)
        if kind == ModelInstanceGroup.KIND_AUTO:
            raise Problem(f"{where}.kind", f"{prefix} has unexpected kind KIND_AUTO")
        if group.profile:
            _check_profiles(group, where, prefix, config.platform)


def _check_gpus(group: ModelInstanceGroup, where: str, prefix: str, gpu_count: int) -> None:
    if not group.gpus:
        reason = "no GPUs are available" if gpu_count <= 0 else "specifies no GPUs"
        raise Problem(f"{where}.gpus", f"{prefix} has kind KIND_GPU but {reason}")
    for gpu in group.gpus:
        if not 0 <= gpu < gpu_count:
            supported = ", ".join(str(g) for g in range(max(gpu_count, 0)))
            raise Problem(
                f"{where}.gpus",
                f"{prefix} specifies invalid or unsupported gpu id {gpu}. GPUs with at least the minimum "
                f"required CUDA compute compatibility of {MIN_COMPUTE_CAPABILITY:f} are: {supported}",
            )


def _check_profiles(group: ModelInstanceGroup, where: str, prefix: str, platform: str) -> None:
    if platform != TENSORRT_PLATFORM:
        raise Problem(
            f"{where}.profile",
            f"{prefix} and platform {platform}specifies profile field which is only supported for TensorRT models",
        )
    for profile in group.profile:
        if not profile:
            raise Problem(f"{where}.profile", "profile name must not be empty")
        index = _leading_int(profile)
        if index is None:
            raise Problem(f"{where}.profile", f"unable to parse '{profile}': stoi")
        if index < 0:
            raise Problem(
                f"{where}.profile",
                f"{prefix} and platform {platform} specifies invalid profile {profile}. The field should "
                "contain the string representation of a non-negative integer.",
            )


def _leading_int(text: str) -> int | None:
    """``std::stoi``: optional whitespace and sign, then digits; the rest is ignored. None if no digits."""
    match = _STOI.match(text)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------------- ValidateModelIOConfig
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
        known = batch_input.kind in BatchInput.Kind.values()
        kind_name = BatchInput.Kind.Name(batch_input.kind) if known else ""
        if not known:
            raise Problem(f"{where}.kind", "unknown batch input kind ''")
        if len(batch_input.source_input) != 1:
            raise Problem(
                f"{where}.source_input",
                f"batch input kind '{kind_name}' expects 1 source input, got {len(batch_input.source_input)}",
            )
        if batch_input.data_type not in (DataType.TYPE_INT32, DataType.TYPE_FP32):
            raise Problem(f"{where}.data_type", "batch input data type must be TYPE_INT32 or TYPE_FP32")
        _check_sources(batch_input.source_input, inputs, where)
    for index, batch_output in enumerate(config.batch_output):
        where = f"batch_output[{index}]"
        known = batch_output.kind in BatchOutput.Kind.values()
        kind_name = BatchOutput.Kind.Name(batch_output.kind) if known else ""
        if not known:
            raise Problem(f"{where}.kind", "unknown batch output kind ''")
        if len(batch_output.source_input) != 1:
            raise Problem(
                f"{where}.source_input",
                f"batch output kind '{kind_name}' expects 1 source input, got {len(batch_output.source_input)}",
            )
        _check_sources(batch_output.source_input, inputs, where)
        targets: set[str] = set()
        for target in batch_output.target_name:
            if target not in outputs:
                raise Problem(f"{where}.target_name", f"unknown target output name '{target}'")
            if target in targets:
                raise Problem(f"{where}.target_name", f"target output name '{target}' can only be specified once")
            targets.add(target)


def _check_sources(sources: Iterable[str], inputs: set[str], where: str) -> None:
    for source in sources:
        if source not in inputs:
            raise Problem(f"{where}.source_input", f"unknown source input name '{source}'")
