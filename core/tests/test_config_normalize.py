"""Normalization (Triton's defaults) and validation (Triton's checks and messages) of model configurations.

Expected messages come from Triton's own QA suite (qa/L0_model_config/*/expected), from real Triton 2.51
answering the same configs, or from core's model_config_utils.cc.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tritium import ConfigError, DataType
from tritium.config import (
    ModelConfig,
    ModelConfigError,
    ModelInstanceGroup,
    autofill_backend_fields,
    config_datatype,
    datatype_of,
    format_model_config,
    full_input_shape,
    is_decoupled,
    normalize_model_config,
    parse_model_config,
    scheduling_section,
)

IO = (
    'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
    'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
)
PY = 'backend: "python"\n'
CPU = ModelInstanceGroup.KIND_CPU
GPU = ModelInstanceGroup.KIND_GPU


def _normalize(text: str, name: str = "m", **kwargs: object) -> ModelConfig:
    return normalize_model_config(parse_model_config(text), model_name=name, source=f"{name}/config.pbtxt", **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- defaults
def test_minimal_config_gets_triton_defaults() -> None:
    config = _normalize(PY + IO)
    expected = parse_model_config(
        PY
        + IO
        + """
        name: "m"
        default_model_filename: "model.py"
        version_policy { latest { num_versions: 1 } }
        optimization { input_pinned_memory { enable: true } output_pinned_memory { enable: true } }
        instance_group [ { name: "m" kind: KIND_CPU count: 1 } ]
        """
    )
    assert config == expected


def test_normalize_returns_a_new_message() -> None:
    original = parse_model_config(PY + IO)
    before = original.SerializeToString()
    normalized = normalize_model_config(original, model_name="m", source="m/config.pbtxt")
    assert original.SerializeToString() == before
    assert normalized is not original


def test_normalize_is_idempotent() -> None:
    once = _normalize(PY + IO + "max_batch_size: 8 dynamic_batching { } instance_group [ { kind: KIND_AUTO } ]")
    assert normalize_model_config(once, model_name="m", source="m/config.pbtxt") == once


@pytest.mark.parametrize(
    ("extra", "section", "expected"),
    [
        ("max_batch_size: 8 dynamic_batching { }", "dynamic_batching", "preferred_batch_size: 8"),
        ("max_batch_size: 8 dynamic_batching { preferred_batch_size: [ 2, 4 ] }", "dynamic_batching",
         "preferred_batch_size: 2\npreferred_batch_size: 4"),
        ("max_batch_size: 0 dynamic_batching { }", "dynamic_batching", ""),  # Triton 2.51 accepts it as is
        ("sequence_batching { }", "sequence_batching", "max_sequence_idle_microseconds: 1000000"),
        ("sequence_batching { max_sequence_idle_microseconds: 5 }", "sequence_batching",
         "max_sequence_idle_microseconds: 5"),
        ("max_batch_size: 2 sequence_batching { oldest { max_candidate_sequences: 4 } }", "sequence_batching",
         "max_sequence_idle_microseconds: 1000000\n"
         "oldest {\n  max_candidate_sequences: 4\n  preferred_batch_size: 2\n}"),
        ("version_policy { all { } }", "version_policy", "all {\n}"),
        ("optimization { input_pinned_memory { enable: false } }", "optimization",
         "input_pinned_memory {\n}\noutput_pinned_memory {\n  enable: true\n}"),
    ],
)  # fmt: skip
def test_section_defaults(extra: str, section: str, expected: str) -> None:
    config = _normalize(PY + IO + extra)
    assert format_model_config(getattr(config, section)).strip() == expected


def test_ensembles_get_no_instance_groups_or_pinned_memory() -> None:
    config = _normalize(
        'platform: "ensemble" input [ { name: "A" data_type: TYPE_FP32 dims: 1 } ]'
        ' output [ { name: "B" data_type: TYPE_FP32 dims: 1 } ]'
        ' ensemble_scheduling { step [ { model_name: "x" input_map { key: "i" value: "A" }'
        ' output_map { key: "o" value: "B" } } ] }',
        name="e",
    )
    assert not config.instance_group
    assert not config.HasField("optimization")
    assert config.version_policy.latest.num_versions == 1


# ---------------------------------------------------------------------------------------- instance groups
@pytest.mark.parametrize(
    ("groups", "backend", "gpu_count", "expected"),
    [
        ("", "python", 0, [("m", CPU, 1, [])]),
        ("", "python", 2, [("m", GPU, 1, [0, 1])]),
        ("", "onnxruntime", 0, [("m", CPU, 2, [])]),  # SetDefaultInstanceCount: 2 for ORT/TF on CPU
        ("", "tensorflow", 0, [("m", CPU, 2, [])]),
        ("", "pytorch", 0, [("m", CPU, 1, [])]),
        ("", "onnxruntime", 1, [("m", GPU, 1, [0])]),
        ("instance_group [ { count: 3 } ]", "python", 0, [("m_0", CPU, 3, [])]),
        ("instance_group [ { kind: KIND_AUTO gpus: [ 1 ] } ]", "python", 2, [("m_0", GPU, 1, [1])]),
        ("instance_group [ { kind: KIND_GPU count: 0 } ]", "python", 3, [("m_0", GPU, 1, [0, 1, 2])]),
        ("instance_group [ { kind: KIND_CPU count: -4 } ]", "onnxruntime", 0, [("m_0", CPU, 2, [])]),
        ("instance_group [ { kind: KIND_MODEL } ]", "onnxruntime", 0, [("m_0", ModelInstanceGroup.KIND_MODEL, 1, [])]),
        ('instance_group [ { name: "a" }, { }, { name: "c" kind: KIND_GPU gpus: [ 0 ] } ]', "python", 1,
         [("a", GPU, 1, [0]), ("m_1", GPU, 1, [0]), ("c", GPU, 1, [0])]),
    ],
)  # fmt: skip
def test_instance_group_defaults(
    groups: str, backend: str, gpu_count: int, expected: list[tuple[str, int, int, list[int]]]
) -> None:
    platform = {"onnxruntime": "onnxruntime_onnx", "tensorflow": "tensorflow_savedmodel"}.get(backend, "")
    text = f'backend: "{backend}" platform: "{platform}" {groups}' if platform else f'backend: "{backend}" {groups}'
    config = _normalize(text, gpu_count=gpu_count)
    assert [(g.name, g.kind, g.count, list(g.gpus)) for g in config.instance_group] == expected


def test_soft_placement_keeps_gpu_groups_on_a_machine_without_gpus() -> None:
    config = _normalize(PY + "instance_group [ { kind: KIND_GPU count: 2 }, { kind: KIND_GPU gpus: [ 3 ] } ]",
                        allow_soft_placement=True)  # fmt: skip
    assert [(g.kind, list(g.gpus)) for g in config.instance_group] == [(GPU, []), (GPU, [3])]


# ------------------------------------------------------------------------------------ backend inference
@pytest.mark.parametrize(
    ("text", "files", "backend", "platform", "filename"),
    [
        ("", {"model.onnx": False}, "onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ("", {"model.onnx": True}, "onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ("", {"model.plan": False}, "tensorrt", "tensorrt_plan", "model.plan"),
        ("", {"model.pt": False}, "pytorch", "pytorch_libtorch", ""),  # as Triton: no filename
        ("", {"model.pt2": False}, "pytorch", "torch_aoti", "model.pt2"),
        ("", {"model.py": False}, "python", "", "model.py"),
        ("", {"model.xml": False, "model.bin": False}, "openvino", "", "model.xml"),
        ("", {"model.savedmodel": True}, "tensorflow", "tensorflow_savedmodel", "model.savedmodel"),
        ("", {"model.graphdef": False}, "tensorflow", "tensorflow_graphdef", "model.graphdef"),
        ('platform: "onnxruntime_onnx"', None, "onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ('platform: "tensorrt_plan"', None, "tensorrt", "tensorrt_plan", "model.plan"),
        ('backend: "tensorrt"', None, "tensorrt", "tensorrt_plan", "model.plan"),
        ('backend: "pytorch"', None, "pytorch", "pytorch_libtorch", "model.pt"),
        ('platform: "pytorch_libtorch"', None, "pytorch", "pytorch_libtorch", ""),  # as Triton: no filename
        ('default_model_filename: "model.py"', None, "python", "", "model.py"),
        ('backend: "python" default_model_filename: "other.py"', None, "python", "", "other.py"),
        ('platform: "tensorflow_savedmodel"', None, "tensorflow", "tensorflow_savedmodel", "model.savedmodel"),
        ('backend: "python"', {"model.onnx": False}, "python", "", "model.py"),  # never overrides
    ],
)
def test_backend_fields_inferred_like_triton(
    tmp_path: Path, text: str, files: dict[str, bool] | None, backend: str, platform: str, filename: str
) -> None:
    version_dir = None
    if files is not None:
        version_dir = tmp_path / "1"
        version_dir.mkdir()
        for name, is_dir in files.items():
            (version_dir / name).mkdir() if is_dir else (version_dir / name).write_bytes(b"")
    config = autofill_backend_fields(parse_model_config(text), model_name="m", version_dir=version_dir)
    assert (config.name, config.backend, config.platform, config.default_model_filename) == (
        "m",
        backend,
        platform,
        filename,
    )


def test_custom_backend_from_model_name() -> None:
    config = autofill_backend_fields(ModelConfig(), model_name="empty_config.identity")
    assert (config.backend, config.default_model_filename) == ("identity", "model.identity")


def test_no_backend_at_all() -> None:
    with pytest.raises(ModelConfigError) as caught:
        autofill_backend_fields(ModelConfig(), model_name="nobackend", source="nobackend/config.pbtxt")
    assert caught.value.field == "backend"
    assert str(caught.value) == (
        "nobackend/config.pbtxt: backend: Invalid model name: Could not determine backend for model 'nobackend' "
        "with no backend in model configuration. Expected model name of the form 'model.<backend_name>'."
    )


# Configs from Triton's own QA suite (autofill_noplatform_success), normalized as Triton's expected files say.
QA_SUCCESS = [
    (
        'name: "no_backend.identity" max_batch_size: 64'
        ' input { name: "INPUT0" data_type: TYPE_INT32 dims: 1000 }'
        ' output { name: "OUTPUT0" data_type: TYPE_INT32 dims: 1000 }',
        1,
        'name: "no_backend.identity" version_policy { latest { num_versions: 1 } } max_batch_size: 64'
        ' input { name: "INPUT0" data_type: TYPE_INT32 dims: 1000 }'
        ' output { name: "OUTPUT0" data_type: TYPE_INT32 dims: 1000 }'
        ' instance_group { name: "no_backend.identity" count: 1 gpus: 0 kind: KIND_GPU }'
        ' default_model_filename: "model.identity"'
        " optimization { input_pinned_memory { enable: true } output_pinned_memory { enable: true } }"
        ' backend: "identity"',
    ),
    (
        'name: "cpu_instance" platform: "onnxruntime_onnx" max_batch_size: 8'
        " version_policy: { latest { num_versions: 1 }}"
        ' input [ { name: "INPUT0" data_type: TYPE_FP16 dims: [ -1,-1 ] } ]'
        ' output [ { name: "OUTPUT0" data_type: TYPE_FP16 dims: [ -1,-1 ] } ]'
        ' instance_group { name: "cpu_instance" kind: KIND_CPU }',
        0,
        'name: "cpu_instance" platform: "onnxruntime_onnx" version_policy { latest { num_versions: 1 } }'
        ' max_batch_size: 8 input { name: "INPUT0" data_type: TYPE_FP16 dims: -1 dims: -1 }'
        ' output { name: "OUTPUT0" data_type: TYPE_FP16 dims: -1 dims: -1 }'
        ' instance_group { name: "cpu_instance" count: 2 kind: KIND_CPU } default_model_filename: "model.onnx"'
        " optimization { input_pinned_memory { enable: true } output_pinned_memory { enable: true } }"
        ' backend: "onnxruntime"',
    ),
]


@pytest.mark.parametrize(("text", "gpu_count", "expected"), QA_SUCCESS)
def test_triton_qa_normalized_configs(text: str, gpu_count: int, expected: str) -> None:
    config = parse_model_config(text)
    config = autofill_backend_fields(config, model_name=config.name)
    normalized = normalize_model_config(config, model_name=config.name, source="qa", gpu_count=gpu_count)
    assert normalized == parse_model_config(expected)


# ---------------------------------------------------------------------------------------- broken configs
ONNX = 'platform: "onnxruntime_onnx"\n'
SEQ_IO = 'max_batch_size: 8\ninput [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'


def _control(name: str, kind: str, values: str = "int32_false_true: [ 0, 1 ]") -> str:
    return f'{{ name: "{name}" control [ {{ kind: {kind} {values} }} ] }}'


# (config text, model name, gpu count, expected field, expected message fragment)
BROKEN: list[tuple[str, str, int, str, str]] = [
    # name and platform
    ('name: "other"\n' + PY, "wrongname", 0, "name",
     "unexpected directory name 'wrongname' for model 'other', directory name must equal model name"),
    ('platform: "onnxruntim"\nbackend: "onnxruntime"', "invalid_platform", 0, "platform",
     "unexpected 'platform' and 'backend' pair, got:onnxruntim, onnxruntime"),
    ('platform: "custom_platform"', "m", 0, "platform", "unexpected platform type 'custom_platform' for m"),
    ('platform: "ensemble"\nbackend: "python"', "has_backend", 0, "backend",
     "Ensemble model 'has_backend' must have platform type 'ensemble' and empty backend type"),
    (PY + "max_batch_size: -1", "m", 0, "max_batch_size", "'max_batch_size' must be non-negative value for m"),
    # dynamic batching
    (PY + IO + "max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 8 ] }", "pref", 0,
     "dynamic_batching.preferred_batch_size", "dynamic batching preferred size must be <= max batch size for pref"),
    (PY + "max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 0 ] }", "m", 0,
     "dynamic_batching.preferred_batch_size", "dynamic batching preferred size must be positive for m"),
    (ONNX + SEQ_IO + "dynamic_batching { priority_levels: 3 }", "default_priority_level0", 0,
     "dynamic_batching.default_priority_level",
     "default priority level must be in range [1, 3] for default_priority_level0"),
    (ONNX + SEQ_IO + "dynamic_batching { priority_levels: 3 default_priority_level: 4 }",
     "default_priority_level1", 0, "dynamic_batching.default_priority_level",
     "default priority level must be in range [1, 3] for default_priority_level1"),
    (ONNX + SEQ_IO + "dynamic_batching { priority_levels: 3 default_priority_level: 1"
     " priority_queue_policy { key: 0 value: { } } }", "priority_level0", 0,
     "dynamic_batching.priority_queue_policy",
     "priority queue policy must have priority level in range [1, 3] for priority_level0"),
    (ONNX + SEQ_IO + "dynamic_batching { priority_levels: 3 default_priority_level: 1"
     " priority_queue_policy { key: 4 value: { } } }", "priority_level1", 0,
     "dynamic_batching.priority_queue_policy",
     "priority queue policy must have priority level in range [1, 3] for priority_level1"),
    (ONNX + SEQ_IO + "dynamic_batching { preserve_ordering: true priority_levels: 3 default_priority_level: 2 }",
     "preserve_ordering0", 0, "dynamic_batching.preserve_ordering",
     "Only one priority level is allowed when 'preserve_ordering' is true for preserve_ordering0"),
    (ONNX + SEQ_IO + "dynamic_batching { preserve_ordering: true"
     " default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5 } }",
     "preserve_ordering1", 0, "dynamic_batching.default_queue_policy.timeout_action",
     "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for preserve_ordering1"),
    (ONNX + SEQ_IO + "dynamic_batching { preserve_ordering: true priority_levels: 1 default_priority_level: 1"
     " priority_queue_policy { key: 1 value { timeout_action: DELAY default_timeout_microseconds: 5 } } }",
     "preserve_ordering2", 0, "dynamic_batching.priority_queue_policy[1].timeout_action",
     "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for preserve_ordering2"),
    # sequence batching
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("START", "CONTROL_SEQUENCE_START") + ", " + _control("S2", "CONTROL_SEQUENCE_START") + " ] }",
     "control_kind_start_multiple", 0, "sequence_batching.control_input[1]",
     "sequence batching specifies multiple CONTROL_SEQUENCE_START tensors for control_kind_start_multiple"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("END", "CONTROL_SEQUENCE_END") + ", " + _control("END2", "CONTROL_SEQUENCE_END") + " ] }",
     "control_kind_end_multiple", 0, "sequence_batching.control_input[1]",
     "sequence batching specifies multiple CONTROL_SEQUENCE_END tensors for control_kind_end_multiple"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("READY", "CONTROL_SEQUENCE_READY") + ", " + _control("R2", "CONTROL_SEQUENCE_READY") + " ] }",
     "control_kind_ready_multiple", 0, "sequence_batching.control_input[1]",
     "sequence batching specifies multiple CONTROL_SEQUENCE_READY tensors for control_kind_ready_multiple"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("C", "CONTROL_SEQUENCE_START") + ", " + _control("C", "CONTROL_SEQUENCE_END") + " ] }",
     "control_tensor_multiple", 0, "sequence_batching.control_input[1].name",
     "sequence batching control tensor 'C' is specified for multiple control kinds for control_tensor_multiple"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ " + _control("S", "CONTROL_SEQUENCE_START", "") + " ] }",
     "control_tensor_no_value", 0, "sequence_batching.control_input[0].control",
     "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for "
     "CONTROL_SEQUENCE_START for control_tensor_no_value"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("S", "CONTROL_SEQUENCE_START", "int32_false_true: [ 0 ]") + " ] }",
     "m", 0, "sequence_batching.control_input[0].control.int32_false_true",
     "sequence batching control 'int32_false_true' must have exactly 2 entries for CONTROL_SEQUENCE_START for m"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("S", "CONTROL_SEQUENCE_START", "int32_false_true: [ 0, 1 ] bool_false_true: [ false, true ]")
     + " ] }", "m", 0, "sequence_batching.control_input[0].control",
     "sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and 'bool_false_true'"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("ID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_FP32") + " ] }", "m", 0,
     "sequence_batching.control_input",
     "unexpected data type for control CONTROL_SEQUENCE_CORRID for m. Allowed data types are TYPE_UINT64, "
     "TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING"),
    (ONNX + SEQ_IO + "sequence_batching { control_input [ "
     + _control("ID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_UINT64 int32_false_true: [ 0, 1 ]") + " ] }",
     "m", 0, "sequence_batching.control_input[0].control.int32_false_true",
     "sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' "
     "for CONTROL_SEQUENCE_CORRID for m"),
    (ONNX + SEQ_IO + 'sequence_batching { control_input [ { name: "" } ] }', "m", 0,
     "sequence_batching.control_input[0].name", "sequence batching control tensor must have a name for m"),
    (ONNX + SEQ_IO + "sequence_batching { oldest { preferred_batch_size: [ 9 ] } }", "m", 0,
     "sequence_batching.oldest.preferred_batch_size",
     "sequence batching preferred batch size must be <= max batch size for m"),
    (ONNX + SEQ_IO + "sequence_batching { direct { minimum_slot_utilization: 1.5 } }", "m", 0,
     "sequence_batching.direct.minimum_slot_utilization",
     "sequence batching minimum slot utilization must be in range (0.0, 1.0] for m"),
    (ONNX + SEQ_IO + "sequence_batching { } response_cache { enable: true }", "m", 0, "response_cache.enable",
     "Response Cache does not currently support model m with sequence batching scheduler."),
    (PY + "model_transaction_policy { decoupled: true } response_cache { enable: true }", "decoupled_cache", 0,
     "response_cache.enable",
     "Response Cache does not currently support model decoupled_cache with 'decoupled' transaction policy."),
    # ensembles
    ('platform: "ensemble"', "ensemble_scheduling_not_set", 0, "ensemble_scheduling",
     "ensemble scheduling must be set for ensemble ensemble_scheduling_not_set whose platform is ensemble"),
    ('platform: "ensemble" ensemble_scheduling { }', "no_step", 0, "ensemble_scheduling.step",
     "must specify 'step' for ensemble 'no_step'"),
    ('platform: "ensemble" instance_group { } ensemble_scheduling { step { } }', "instance_group_set", 0,
     "instance_group", "instance group should not be specified for ensemble 'instance_group_set'"),
    ('platform: "ensemble" optimization { } ensemble_scheduling { step { } }', "optimization_set", 0,
     "optimization", "optimization should not be specified for ensemble 'optimization_set'"),
    ('platform: "ensemble" model_warmup { } ensemble_scheduling { step { } }', "model_warmup_set", 0,
     "model_warmup", "model_warmup can not be specified for ensemble 'model_warmup_set'"),
    ('platform: "ensemble" ensemble_scheduling { step { input_map { key: "a" value: "b" } } }', "no_model_name",
     0, "ensemble_scheduling.step[0].model_name", "must specify 'model_name' in step 0 of ensemble 'no_model_name'"),
    ('platform: "ensemble" ensemble_scheduling { step { model_name: "x" output_map { key: "a" value: "b" } } }',
     "no_input_map", 0, "ensemble_scheduling.step[0].input_map",
     "must specify 'input_map' in step 0 of ensemble 'no_input_map'"),
    ('platform: "ensemble" ensemble_scheduling { step { model_name: "x" input_map { key: "a" value: "b" } } }',
     "no_output_map", 0, "ensemble_scheduling.step[0].output_map",
     "must specify 'output_map' in step 0 of ensemble 'no_output_map'"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' output { name: "O" data_type: TYPE_FP32 dims: 1 } ensemble_scheduling {'
     ' step { model_name: "a" input_map { key: "x" value: "I" } output_map { key: "y" value: "T" } }'
     ' step { model_name: "b" input_map { key: "x" value: "I" } output_map { key: "y" value: "T" } }'
     ' step { model_name: "c" input_map { key: "x" value: "T" } output_map { key: "y" value: "O" } } }',
     "overmapped", 0, "ensemble_scheduling.step[1].output_map",
     "ensemble tensor 'T' can appear in an output map only once for ensemble 'overmapped' step 1"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' input { name: "J" data_type: TYPE_FP32 dims: 1 } output { name: "O" data_type: TYPE_FP32 dims: 1 }'
     ' ensemble_scheduling { step { model_name: "a" input_map { key: "x" value: "I" }'
     ' output_map { key: "y" value: "O" } } }',
     "unreachable_input", 0, "input", "ensemble input 'J' for ensemble unreachable_input' is not used"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' output { name: "O" data_type: TYPE_FP32 dims: 1 } output { name: "P" data_type: TYPE_FP32 dims: 1 }'
     ' ensemble_scheduling { step { model_name: "a" input_map { key: "x" value: "I" }'
     ' output_map { key: "y" value: "O" } } }',
     "unreachable_output", 0, "output", "ensemble output 'P' for ensemble unreachable_output' is not used"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' output { name: "O" data_type: TYPE_FP32 dims: 1 } ensemble_scheduling {'
     ' step { model_name: "a" input_map { key: "x" value: "I" } input_map { key: "z" value: "N" }'
     ' output_map { key: "y" value: "O" } } }',
     "unreachable_output_3", 0, "output",
     "output 'O' for ensemble 'unreachable_output_3' is not written: at least one of its depending tensors, "
     "'N', is not connected"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' output { name: "O" data_type: TYPE_FP32 dims: 1 } ensemble_scheduling {'
     ' step { model_name: "a" input_map { key: "x" value: "I" } output_map { key: "y" value: "O" }'
     ' output_map { key: "w" value: "W" } } }',
     "redundant_tensor_as_output", 0, "ensemble_scheduling.step",
     "ensemble tensor 'W' is unused in ensemble 'redundant_tensor_as_output'"),
    ('platform: "ensemble" input { name: "I" data_type: TYPE_FP32 dims: 1 }'
     ' output { name: "O" data_type: TYPE_FP32 dims: 1 } ensemble_scheduling {'
     ' step { model_name: "a" input_map { key: "x" value: "I" } input_map { key: "u" value: "U" }'
     ' output_map { key: "y" value: "T" } }'
     ' step { model_name: "b" input_map { key: "x" value: "T" } output_map { key: "y" value: "U" } }'
     ' step { model_name: "c" input_map { key: "x" value: "T" } output_map { key: "y" value: "O" } } }',
     "cycle", 0, "output",
     "output 'O' for ensemble 'cycle' is not written: at least one of its depending tensors, 'U', is not connected"),
    (ONNX + "ensemble_scheduling { step { } }", "m", 0, "platform",
     "ensemble scheduling cannot be set for model 'm' whose platform is not ensemble"),
    # metrics
    (PY + "model_metrics { metric_control { } }", "m", 0, "model_metrics.metric_control[0]",
     "metric control must specify 'metric_identifier'"),
    (PY + 'model_metrics { metric_control { metric_identifier { family: "" } } }', "m", 0,
     "model_metrics.metric_control[0].metric_identifier.family", "metric identifier must specify non-empty 'family'"),
    (PY + 'model_metrics { metric_control { metric_identifier { family: "f" } } }', "m", 0,
     "model_metrics.metric_control[0]", "metric control must specify 'histogram_options'"),
    (PY + 'model_metrics { metric_control { metric_identifier { family: "f" } histogram_options { } } }', "m", 0,
     "model_metrics.metric_control[0].histogram_options.buckets", "histogram options must specify non-empty 'buckets'"),
    # instance groups
    (PY + IO + "instance_group [ { kind: KIND_GPU } ]", "gpu", 0, "instance_group[0].gpus",
     "instance group gpu_0 of model gpu has kind KIND_GPU but no GPUs are available"),
    (PY + IO + "instance_group [ { kind: KIND_GPU gpus: [ 2 ] } ]", "invalid_gpu", 2, "instance_group[0].gpus",
     "instance group invalid_gpu_0 of model invalid_gpu specifies invalid or unsupported gpu id 2. GPUs with at "
     "least the minimum required CUDA compute compatibility of 6.000000 are: 0, 1"),
    (PY + IO + "instance_group [ { kind: KIND_GPU gpus: [ -1 ] } ]", "negative_gpu", 2, "instance_group[0].gpus",
     "instance group negative_gpu_0 of model negative_gpu specifies invalid or unsupported gpu id -1."),
    (PY + IO + "instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]", "invalid_cpu", 2, "instance_group[0].gpus",
     "instance group invalid_cpu_0 of model invalid_cpu has kind KIND_CPU but specifies one or more GPUs"),
    (PY + IO + "instance_group [ { kind: KIND_AUTO gpus: [ 5 ] } ]", "m", 2, "instance_group[0].gpus",
     "instance group m_0 of model m has kind KIND_CPU but specifies one or more GPUs"),  # AUTO -> CPU, as Triton
    (PY + IO + "instance_group [ { kind: KIND_MODEL gpus: [ 0 ] } ]", "m", 2, "instance_group[0].gpus",
     "instance group m_0 of model m has kind KIND_MODEL but specifies one or more GPUs"),
    (PY + IO + 'instance_group [ { profile: [ "0" ] } ]', "m", 0, "instance_group[0].profile",
     "instance group m_0 of model m and platform specifies profile field which is only supported for TensorRT"),
    ('platform: "tensorrt_plan"\n' + IO + 'instance_group [ { profile: [ "-1" ] } ]', "m", 0,
     "instance_group[0].profile", "specifies invalid profile -1. The field should contain the string "
     "representation of a non-negative integer."),
    # inputs and outputs (Triton appends " for <model>")
    (PY + 'input [ { data_type: TYPE_FP32 dims: [ 1 ] } ]', "m", 0, "input[0].name",
     "model input must specify 'name' for m"),
    (PY + 'input [ { name: "IN" dims: [ 1 ] } ]', "m", 0, "input[0].data_type",
     "model input 'IN' must specify 'data_type' for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 } ]', "m", 0, "input[0].dims",
     "model input 'IN' must specify 'dims' for m"),
    (PY + 'max_batch_size: 8 input [ { name: "IN" data_type: TYPE_FP32 dims: [ 0 ] } ]', "zerodim", 0,
     "input[0].dims",
     "model input 'IN' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for zerodim"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4, -2 ] } ]', "m", 0, "input[0].dims",
     "model input 'IN' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m"),
    (PY + 'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4, 0 ] } ]', "m", 0, "output[0].dims",
     "model output 'OUT' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m"),
    (PY + 'output [ { name: "OUT" dims: [ 4 ] } ]', "m", 0, "output[0].data_type",
     "model output 'OUT' must specify 'data_type' for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] reshape { shape: [ ] } } ]', "emptyreshape", 0,
     "input[0].reshape", "model input 'IN' cannot have empty reshape for non-batching model as scalar tensors are "
     "not supported for emptyreshape"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 0 ] } } ]', "m", 0,
     "input[0].reshape.shape", "model input 'IN' reshape dimensions must be integer >= 1, or -1"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 2, 3 ] } } ]', "m", 0,
     "input[0].reshape", "model input 'IN' has different size for dims and reshape for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2, -1 ] reshape { shape: [ -1, 2, -1 ] } } ]', "m",
     0, "input[0].reshape",
     "model input 'IN' has different number of variable-size dimensions for dims and reshape for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2, 4, -1, 6 ] reshape { shape: [ 4, -1, 12 ] } } ]',
     "m", 0, "input[0].reshape", "model input 'IN' has different size for dims and reshape for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224 ] } ]', "m", 0,
     "input[0].dims", "model input NHWC/NCHW require 3 dims for m"),
    (PY + 'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 2 ] is_shape_tensor: true } ]', "m", 0,
     "input[0].is_shape_tensor", "shape tensors are only supported for TensorRT platform for m"),
    (PY + 'output [ { name: "O" data_type: TYPE_INT32 dims: [ 2 ] is_non_linear_format_io: true } ]', "m", 0,
     "output[0].is_non_linear_format_io", "Non-linear IO format is only supported for the TensorRT platform for m"),
    ('platform: "tensorrt_plan" input [ { name: "I" data_type: TYPE_FP16 dims: [ 3, 2 ] is_non_linear_format_io:'
     " true } ]", "m", 0, "input[0].dims", "Non-linear IO format input requires 3 dims for m"),
    (PY + IO + 'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "N" data_type: TYPE_FP32 } ]', "m", 0,
     "batch_input[0].source_input", "batch input kind 'BATCH_ELEMENT_COUNT' expects 1 source input, got 0 for m"),
    (PY + IO + 'batch_input [ { kind: 99 target_name: "N" data_type: TYPE_FP32 source_input: "IN" } ]', "m", 0,
     "batch_input[0].kind", "unknown batch input kind '' for m"),
    (PY + IO + 'batch_output [ { kind: 99 target_name: "OUT" source_input: "IN" } ]', "m", 0,
     "batch_output[0].kind", "unknown batch output kind '' for m"),
    (PY + IO + 'batch_output [ { target_name: "OUT" } ]', "m", 0, "batch_output[0].source_input",
     "batch output kind 'BATCH_SCATTER_WITH_INPUT_SHAPE' expects 1 source input, got 0 for m"),
    (PY + IO + 'batch_input [ { target_name: "N" data_type: TYPE_INT64 source_input: "IN" } ]', "m", 0,
     "batch_input[0].data_type", "batch input data type must be TYPE_INT32 or TYPE_FP32 for m"),
    (PY + IO + 'batch_input [ { target_name: "N" data_type: TYPE_INT32 source_input: "NOPE" } ]', "m", 0,
     "batch_input[0].source_input", "unknown source input name 'NOPE' for m"),
    (PY + IO + 'batch_output [ { target_name: "X" source_input: "IN" } ]', "m", 0, "batch_output[0].target_name",
     "unknown target output name 'X' for m"),
    (PY + IO + 'batch_output [ { target_name: [ "OUT", "OUT" ] source_input: "IN" } ]', "m", 0,
     "batch_output[0].target_name", "target output name 'OUT' can only be specified once for m"),
    # Tritium's own check (Triton keeps the first of two equal names)
    (PY + 'input [ { name: "IN" data_type: TYPE_FP32 dims: 1 }, { name: "IN" data_type: TYPE_FP32 dims: 1 } ]',
     "dup", 0, "input[1].name", "model input 'IN' is specified more than once for dup"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "name", "gpu_count", "field", "fragment"), BROKEN)
def test_broken_configs_name_file_field_and_problem(
    text: str, name: str, gpu_count: int, field: str, fragment: str
) -> None:
    source = f"models/{name}/config.pbtxt"
    with pytest.raises(ModelConfigError) as caught:
        normalize_model_config(parse_model_config(text), model_name=name, source=source, gpu_count=gpu_count)
    error = caught.value
    assert isinstance(error, ConfigError)
    assert (error.source, error.field) == (source, field)
    assert fragment in error.detail
    assert str(error) == f"{source}: {field}: {error.detail}"


# ----------------------------------------------------------------------------------------------- helpers
def test_full_input_shape() -> None:
    config = parse_model_config(
        'max_batch_size: 4 input { name: "A" dims: [ 3, -1 ] }'
        ' input { name: "S" dims: [ 1 ] reshape { shape: [ ] } }'
        ' output { name: "O" dims: [ 2 ] reshape { shape: [ 1, 2 ] } }'
    )
    a, s = config.input
    assert full_input_shape(config, a) == [-1, 3, -1]
    assert full_input_shape(config, s) == [-1, 1]
    assert full_input_shape(config, s, reshaped=True) == [-1]
    assert full_input_shape(config, config.output[0], reshaped=True) == [-1, 1, 2]
    assert full_input_shape(config, a, reshaped=True) == [-1, 3, -1]  # no reshape: dims
    config.max_batch_size = 0
    assert full_input_shape(config, a) == [3, -1]


@pytest.mark.parametrize(
    ("text", "section"),
    [
        ("", ""),
        ("dynamic_batching { }", "dynamic_batching"),
        ("sequence_batching { }", "sequence_batching"),
        ("ensemble_scheduling { }", "ensemble_scheduling"),
    ],
)
def test_scheduling_section(text: str, section: str) -> None:
    assert scheduling_section(parse_model_config(text)) == section


def test_datatypes() -> None:
    config = parse_model_config(
        'input { name: "a" data_type: TYPE_STRING } input { name: "b" data_type: TYPE_BF16 } input { name: "c" }'
    )
    assert datatype_of(config.input[0]) is DataType.BYTES
    assert datatype_of(config.input[1]) is DataType.BF16
    with pytest.raises(ConfigError, match="'c' has no valid data type"):
        datatype_of(config.input[2])
    for datatype in DataType:
        assert datatype_of(ModelConfig().input.add(data_type=config_datatype(datatype))) is datatype


def test_is_decoupled() -> None:
    assert not is_decoupled(ModelConfig())
    assert is_decoupled(parse_model_config("model_transaction_policy { decoupled: true }"))
