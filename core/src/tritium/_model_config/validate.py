"""Validation of a model configuration as a whole, with Triton's messages (its ``ValidateModelConfig``).

Platform and backend, batching, sequence batching controls, ensembles, metrics and the response cache; each
check raises :class:`~tritium._model_config.errors.Problem` naming the offending field. Instance groups and
tensors are checked by :mod:`tritium._model_config.validate_groups` and :mod:`tritium._model_config.validate_io`;
an ensemble's steps against the configs of the models they call are checked by the ensemble scheduler (it needs
those configs).
"""

from __future__ import annotations

from tritium._model_config.backend import (
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
from tritium._model_config.ensemble import validate_ensemble
from tritium._model_config.errors import Problem
from tritium.proto.model_config_pb2 import (
    DataType,
    ModelConfig,
    ModelQueuePolicy,
    ModelSequenceBatching,
)

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
