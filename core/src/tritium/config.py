"""Model configurations: Triton's ``ModelConfig`` (config.pbtxt), parsed, normalized, validated, rendered.

:class:`ModelConfig` is a protobuf message with Triton's exact schema (package ``inference``, same field names
and numbers; see ``tritium/proto/model_config.proto``), so every config.pbtxt Triton accepts parses here and
gRPC clients get byte-identical messages. The usual life of a config in the server::

    config = load_model_config(model_dir / "config.pbtxt")            # syntax only
    config = autofill_backend_fields(config, model_name=..., version_dir=...)   # which backend
    config = backend.auto_complete_config(source, config)             # inputs/outputs from the model file
    config = normalize_model_config(config, model_name=..., source=..., gpu_count=...)  # defaults + checks
    model_config_to_json(config)                                       # GET /v2/models/<m>/config

Every error is a :class:`ModelConfigError` (a :class:`tritium.ConfigError`) whose message names the source
file, the field and the problem, with Triton's wording. ``docs/model-configuration.md`` is the reference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tritium._base.datatypes import DataType
from tritium._model_config.backend import Entries, complete_backend_fields
from tritium._model_config.defaults import fill_instance_groups, fill_model_defaults
from tritium._model_config.errors import ModelConfigError, Problem
from tritium._model_config.json_form import INT64_AS_STRING, model_config_from_json, model_config_to_json
from tritium._model_config.parameters import (
    bool_parameter,
    enum_name,
    int_parameter,
    parameter_value,
    parse_bool_value,
    parse_float_value,
    parse_int_value,
    set_enum,
    shape_string,
)
from tritium._model_config.text import format_model_config, load_model_config, parse_model_config
from tritium._model_config.validate import validate_model_config
from tritium._model_config.validate_groups import validate_instance_groups
from tritium._model_config.validate_io import validate_io
from tritium.proto.model_config_pb2 import (
    BatchInput,
    BatchOutput,
    ModelConfig,
    ModelDynamicBatching,
    ModelEnsembling,
    ModelInput,
    ModelInstanceGroup,
    ModelMetrics,
    ModelOperations,
    ModelOptimizationPolicy,
    ModelOutput,
    ModelParameter,
    ModelQueuePolicy,
    ModelRateLimiter,
    ModelRepositoryAgents,
    ModelResponseCache,
    ModelSequenceBatching,
    ModelTensorReshape,
    ModelTransactionPolicy,
    ModelVersionPolicy,
    ModelWarmup,
)
from tritium.proto.model_config_pb2 import DataType as _ProtoDataType

__all__ = [
    "BatchInput",
    "BatchOutput",
    "INT64_AS_STRING",
    "ModelConfig",
    "ModelConfigError",
    "ModelDynamicBatching",
    "ModelEnsembling",
    "ModelInput",
    "ModelInstanceGroup",
    "ModelMetrics",
    "ModelOperations",
    "ModelOptimizationPolicy",
    "ModelOutput",
    "ModelParameter",
    "ModelQueuePolicy",
    "ModelRateLimiter",
    "ModelRepositoryAgents",
    "ModelResponseCache",
    "ModelSequenceBatching",
    "ModelTensorReshape",
    "ModelTransactionPolicy",
    "ModelVersionPolicy",
    "ModelWarmup",
    "autofill_backend_fields",
    "bool_parameter",
    "config_datatype",
    "datatype_of",
    "enum_name",
    "format_model_config",
    "full_input_shape",
    "int_parameter",
    "is_decoupled",
    "load_model_config",
    "model_config_from_json",
    "model_config_to_json",
    "normalize_model_config",
    "parameter_value",
    "parse_bool_value",
    "parse_float_value",
    "parse_int_value",
    "parse_model_config",
    "scheduling_section",
    "set_enum",
    "shape_string",
]


def autofill_backend_fields(
    config: ModelConfig,
    *,
    model_name: str,
    version_dir: str | os.PathLike[str] | None = None,
    source: str = "",
) -> ModelConfig:
    """A copy of ``config`` with ``name``, ``backend``, ``platform`` and ``default_model_filename`` filled
    the way Triton infers them (its ``AutoCompleteBackendFields``), before a backend is chosen.

    ``version_dir`` is the version directory to look into for model files (Triton looks into the first
    subdirectory of the model directory in lexicographic order); None when there is none. A name of the form
    ``<model>.<backend>`` selects a custom backend when nothing else does. Raises :class:`ModelConfigError`
    naming ``source`` (default: the model name) when no backend can be determined.
    """
    result = _copy(config)
    try:
        complete_backend_fields(result, model_name, _list_dir(version_dir))
    except Problem as problem:
        raise problem.at(source or model_name) from None
    return result


def normalize_model_config(
    config: ModelConfig,
    *,
    model_name: str,
    source: str,
    gpu_count: int = 0,
    allow_soft_placement: bool = False,
    auto_gpu: bool = True,
) -> ModelConfig:
    """A new, validated config with Triton's defaults filled in (``config`` is left unchanged).

    Fills what Triton's core fills (name, backend/platform from each other, version policy, preferred batch
    sizes, sequence idle time, pinned memory, instance groups: see docs/model-configuration.md) and checks
    what Triton checks, in Triton's order, raising :class:`ModelConfigError` that names ``source``, the field
    and the problem. ``gpu_count`` is the number of usable GPUs (ids 0..n-1). With
    ``allow_soft_placement`` KIND_GPU groups naming missing GPUs are kept for the server to place on CPU
    instead of being rejected. ``auto_gpu`` False keeps groups whose kind is not given (KIND_AUTO) on the CPU
    even when GPUs exist (the model's backend cannot run on them); explicit KIND_GPU is unaffected.
    """
    result = _copy(config)
    try:
        complete_backend_fields(result, model_name, None)
        fill_model_defaults(result)
        validate_model_config(result)
        if result.name != model_name:
            raise Problem(
                "name",
                f"unexpected directory name '{model_name}' for model '{result.name}', directory name must "
                "equal model name",
            )
        fill_instance_groups(result, gpu_count, auto_gpu=auto_gpu)
        validate_instance_groups(result, gpu_count, allow_soft_placement=allow_soft_placement)
        validate_io(result)
    except Problem as problem:
        raise problem.at(source) from None
    return result


def full_input_shape(config: ModelConfig, tensor: ModelInput | ModelOutput, *, reshaped: bool = False) -> list[int]:
    """The full shape of an input or output: ``[-1] + dims`` for a batching model (max_batch_size > 0),
    else ``dims``. This is the shape clients see (model metadata, request validation).

    With ``reshaped=True`` it is the shape the backend sees instead: ``reshape.shape`` replaces ``dims`` when
    the tensor has a reshape (an empty reshape of a batching model gives ``[-1]``).
    """
    dims: Sequence[int] = tensor.reshape.shape if reshaped and tensor.HasField("reshape") else tensor.dims
    return [-1, *dims] if config.max_batch_size > 0 else list(dims)


def scheduling_section(config: ModelConfig) -> str:
    """The scheduling choice the config sets: ``"dynamic_batching"``, ``"sequence_batching"``,
    ``"ensemble_scheduling"``, or ``""`` for the default scheduler."""
    return config.WhichOneof("scheduling_choice") or ""


def datatype_of(tensor: ModelInput | ModelOutput) -> DataType:
    """The :class:`tritium.DataType` of a tensor config (TYPE_STRING is BYTES).

    Raises :class:`ModelConfigError` for TYPE_INVALID or an unknown enum number.
    """
    try:
        return DataType.from_config_name(_ProtoDataType.Name(tensor.data_type))
    except ValueError:
        raise ModelConfigError(
            "<config>", f"{tensor.name}.data_type", f"tensor '{tensor.name}' has no valid data type"
        ) from None


def config_datatype(datatype: DataType) -> int:
    """The ModelConfig ``DataType`` enum value of a :class:`tritium.DataType` (BYTES is TYPE_STRING)."""
    return int(_ProtoDataType.Value(datatype.config_name))


def is_decoupled(config: ModelConfig) -> bool:
    """Whether the model uses the decoupled transaction policy (0..N responses per request)."""
    return bool(config.model_transaction_policy.decoupled)


def _copy(config: ModelConfig) -> ModelConfig:
    result = ModelConfig()
    result.CopyFrom(config)
    return result


def _list_dir(path: str | os.PathLike[str] | None) -> Entries | None:
    """A directory's entries (name -> is a directory), or None when there is no such directory."""
    if path is None:
        return None
    directory = Path(path)
    try:
        return {entry.name: entry.is_dir() for entry in directory.iterdir()}
    except OSError:
        return None
