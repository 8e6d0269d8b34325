"""Auto-complete of tensorrt_plan configs from the engine (against the TensorRT test double)."""

from __future__ import annotations

import pytest
from tritium_backend_tensorrt._autocomplete import complete_config
from tritium_backend_tensorrt._engine import EngineInfo

from tritium import ConfigError, DataType


def info_of(kit, spec):
    trt, _device = kit.fake.make_fake()
    engine = trt.Runtime(None).deserialize_cuda_engine(kit.fake.plan_bytes(spec))
    return EngineInfo.read(engine)


def test_config_less_batching_engine(kit):
    config = complete_config(kit.parse_config(name="m"), info_of(kit, kit.add_sub_spec(width=16)))
    assert config.max_batch_size == 8
    assert config.HasField("dynamic_batching")
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("INPUT0", DataType.FP32.config_enum, [16]), ("INPUT1", DataType.FP32.config_enum, [16])
    ]
    assert [t.name for t in config.output] == ["OUTPUT0", "OUTPUT1"]
    assert complete_config(config, info_of(kit, kit.add_sub_spec(width=16))) == config


@pytest.mark.parametrize(
    ("trt_type", "datatype"),
    [("FLOAT", DataType.FP32), ("HALF", DataType.FP16), ("BF16", DataType.BF16), ("INT8", DataType.INT8),
     ("UINT8", DataType.UINT8), ("INT32", DataType.INT32), ("INT64", DataType.INT64), ("BOOL", DataType.BOOL)],
)
def test_every_mapped_datatype(kit, trt_type, datatype):
    config = complete_config(kit.parse_config(name="m"), info_of(kit, kit.identity_spec(trt_type)))
    assert config.input[0].data_type == datatype.config_enum
    assert config.output[0].data_type == datatype.config_enum


def test_unmapped_types_are_left_for_the_load_to_refuse(kit):
    info = info_of(kit, kit.identity_spec("FP8"))
    assert info.inputs[0].datatype is None and info.inputs[0].trt_type == "FP8"
    config = complete_config(kit.parse_config(name="m"), info)
    assert config.input[0].data_type == 0


def test_static_engine_with_config_dims_does_not_batch(kit):
    spec = kit.add_sub_spec(batch=False)
    text = 'name: "m" input [ { name: "INPUT0" dims: [2, 4] } ]'
    config = complete_config(kit.parse_config(text), info_of(kit, spec))
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 4]
    assert config.input[0].data_type == DataType.FP32.config_enum
    assert len(config.input) == 1, "a config listing inputs is not given the others"
    assert [list(o.dims) for o in config.output] == [[2, 4], [2, 4]]


def test_first_dimension_is_the_batch_dimension_without_hints(kit):
    """As in Triton: without config dims, a static first dimension is taken for the batch dimension."""
    config = complete_config(kit.parse_config(name="m"), info_of(kit, kit.add_sub_spec(batch=False)))
    assert config.max_batch_size == 2
    assert list(config.input[0].dims) == [4]


def test_config_dims_hinting_batching(kit):
    text = 'name: "m" input [ { name: "INPUT0" dims: [4] } ]'
    config = complete_config(kit.parse_config(text), info_of(kit, kit.add_sub_spec()))
    assert config.max_batch_size == 8


def test_contradicting_hints_are_an_error(kit):
    text = 'name: "m" input [ { name: "INPUT0" dims: [4] }, { name: "INPUT1" dims: [1, 4] } ]'
    with pytest.raises(ConfigError, match="contradicting each other"):
        complete_config(kit.parse_config(text), info_of(kit, kit.add_sub_spec()))


def test_batching_hint_for_an_engine_that_cannot_batch(kit):
    spec = kit.identity_spec(shape=[-1, 4], profiles=[{"INPUT0": [[0, 4], [0, 4], [0, 4]]}])
    text = 'name: "m" input [ { name: "INPUT0" dims: [4] } ]'
    with pytest.raises(ConfigError, match="doesn't support batching"):
        complete_config(kit.parse_config(text), info_of(kit, spec))


def test_max_batch_size_above_the_engine_is_an_error_and_below_is_kept(kit):
    with pytest.raises(ConfigError, match="configuration specified max-batch 9 but TensorRT engine only supports max-batch 8"):  # noqa: E501
        complete_config(kit.parse_config('name: "m" max_batch_size: 9'), info_of(kit, kit.add_sub_spec()))
    config = complete_config(kit.parse_config('name: "m" max_batch_size: 3'), info_of(kit, kit.add_sub_spec()))
    assert config.max_batch_size == 3


def test_max_batch_size_follows_the_listed_profiles(kit):
    profiles = [
        {"INPUT0": [[1, 1], [2, 2], [4, 8]]},
        {"INPUT0": [[1, 1], [16, 2], [32, 8]]},
    ]
    spec = kit.identity_spec(profiles=profiles)
    assert complete_config(kit.parse_config(name="m"), info_of(kit, spec)).max_batch_size == 4
    text = 'name: "m" instance_group [ { profile: ["1"] } ]'
    assert complete_config(kit.parse_config(text), info_of(kit, spec)).max_batch_size == 32
    with pytest.raises(ConfigError, match="invalid profile 2"):
        complete_config(kit.parse_config('name: "m" instance_group [ { profile: ["2"] } ]'), info_of(kit, spec))


def test_unknown_config_tensor_is_an_error(kit):
    with pytest.raises(ConfigError, match="unexpected inference input 'NOPE', allowed inputs are: INPUT0, INPUT1"):
        complete_config(kit.parse_config('name: "m" input [ { name: "NOPE" } ]'), info_of(kit, kit.add_sub_spec()))


def test_scalar_tensor_gets_dims_one_and_an_empty_reshape(kit):
    spec = kit.identity_spec(shape=[-1], profiles=[{"INPUT0": [[1], [2], [4]]}])
    config = complete_config(kit.parse_config(name="m"), info_of(kit, spec))
    assert config.max_batch_size == 4
    assert list(config.input[0].dims) == [1]
    assert config.input[0].HasField("reshape") and list(config.input[0].reshape.shape) == []


def test_what_the_config_sets_is_kept(kit):
    text = 'name: "m" dynamic_batching { max_queue_delay_microseconds: 5 } input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]'  # noqa: E501
    config = complete_config(kit.parse_config(text), info_of(kit, kit.identity_spec()))
    assert list(config.input[0].dims) == [-1]
    assert config.dynamic_batching.max_queue_delay_microseconds == 5


def test_shape_tensor_and_non_linear_flags(kit):
    spec = kit.identity_spec()
    spec["tensors"][1]["format"] = "CHW32"
    config = complete_config(kit.parse_config(name="m"), info_of(kit, spec))
    assert config.output[0].is_non_linear_format_io
    with pytest.raises(ConfigError, match="incorrectly specified as a shape tensor"):
        complete_config(
            kit.parse_config('name: "m" input [ { name: "INPUT0" is_shape_tensor: true } ]'),
            info_of(kit, kit.identity_spec()),
        )


def test_backend_skips_explicit_cpu_groups_and_missing_files(kit, tmp_path):
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    cpu = kit.parse_config('name: "m" instance_group [ { kind: KIND_CPU } ]')
    assert backend.auto_complete_config(source, cpu) is cpu
    missing = kit.write_plan(tmp_path, "n", kit.add_sub_spec(), filename="other.plan")
    config = kit.parse_config(name="n")
    assert backend.auto_complete_config(missing, config) is config


def test_cc_model_filenames_pick_the_plan_for_the_gpu(kit, tmp_path):
    backend, _, device = kit.make_backend()
    device.capability = "8.6"
    source = kit.write_plan(tmp_path, "m", b"not a plan")
    kit.write_plan(tmp_path, "m", kit.add_sub_spec(width=3), filename="ampere.plan")
    config = kit.parse_config('name: "m" cc_model_filenames { key: "8.6" value: "ampere.plan" }')
    assert list(backend.auto_complete_config(source, config).input[0].dims) == [3]


def test_an_input_without_profile_data_uses_its_static_shape(kit, monkeypatch):
    spec = kit.add_sub_spec(batch=False)
    monkeypatch.setattr(kit.fake.FakeEngine, "get_tensor_profile_shape", lambda self, name, index: [(), (), ()])
    info = info_of(kit, spec)
    assert info.profiles[0]["INPUT0"].max == (2, 4)
    assert info.max_batch_size((0,)) == 2
