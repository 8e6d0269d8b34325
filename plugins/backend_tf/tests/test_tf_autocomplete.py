"""Auto-complete from SavedModel signatures (Triton's rules) and the config checks, without TensorFlow."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_backend_tf import TensorFlowBackend
from tritium_backend_tf._autocomplete import auto_complete, validate
from tritium_backend_tf._dtypes import TF_TO_TRITON
from tritium_backend_tf._signature import ModelSignature, TensorInfo

from tritium import ConfigError
from tritium.config import ModelConfig


def _complete(backend, source, text="", config_from=None):
    config = config_from(text)
    config.name = source.name
    config.backend = "tensorflow"
    config.platform = "tensorflow_savedmodel"
    return backend.auto_complete_config(source, config)


def test_config_less_savedmodel_gets_tensors_batching_and_dynamic_batching(backend, model_link, tf_models, config_from):
    source = model_link("simple", tf_models.simple)
    config = _complete(backend, source, config_from=config_from)
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("INPUT0", ModelConfig().input.add(data_type="TYPE_INT32").data_type, [16]),
        ("INPUT1", ModelConfig().input.add(data_type="TYPE_INT32").data_type, [16]),
    ]
    assert [t.name for t in config.output] == ["OUTPUT0", "OUTPUT1"]


@pytest.mark.parametrize(("option", "batch", "dynamic"), [("1", 1, False), ("0", 0, False), ("16", 16, True)])
def test_default_max_batch_size_option(model_link, tf_models, config_from, option, batch, dynamic):
    backend = TensorFlowBackend({"default-max-batch-size": option})
    config = _complete(backend, model_link("simple", tf_models.simple), config_from=config_from)
    assert config.max_batch_size == batch
    assert config.HasField("dynamic_batching") is dynamic


def test_explicit_max_batch_size_and_scheduler_are_kept(backend, model_link, tf_models, config_from):
    source = model_link("simple", tf_models.simple)
    config = _complete(backend, source, "max_batch_size: 8 sequence_batching {}", config_from)
    assert config.max_batch_size == 8
    assert config.WhichOneof("scheduling_choice") == "sequence_batching"


def test_non_batching_signature(backend, model_link, tf_models, config_from):
    config = _complete(backend, model_link("nobatch", tf_models.identities_nobatch), config_from=config_from)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 3] and list(config.output[0].dims) == [2, 3]


def test_max_batch_size_on_a_model_that_cannot_batch(backend, model_link, tf_models, config_from):
    with pytest.raises(ConfigError) as error:
        _complete(backend, model_link("nobatch", tf_models.identities_nobatch), "max_batch_size: 8", config_from)
    assert str(error.value) == (
        "unable to autofill for 'nobatch', configuration specified max-batch 8 but model signature does not "
        "support batching"
    )


def test_listed_dims_hint_whether_the_model_batches(backend, model_link, tf_models, config_from):
    source = model_link("ids", tf_models.identities)  # serving_default: FP32 [-1, -1]
    batching = _complete(backend, source, 'input [ { name: "INPUT0" dims: [ 5 ] } ]', config_from)
    assert batching.max_batch_size == 4 and list(batching.input[0].dims) == [5]
    assert list(batching.output[0].dims) == [-1]
    flat = _complete(backend, source, 'input [ { name: "INPUT0" dims: [ 4, 5 ] } ]', config_from)
    assert flat.max_batch_size == 0 and list(flat.output[0].dims) == [-1, -1]
    assert flat.input[0].data_type == batching.input[0].data_type != 0  # filled from the signature


def test_contradicting_hints(backend, model_link, tf_models, config_from):
    source = model_link("ids", tf_models.identities)
    text = 'input [ { name: "INPUT0" dims: [ 5 ] } ] output [ { name: "OUTPUT0" dims: [ 4, 5 ] } ]'
    with pytest.raises(ConfigError, match="contradicting each other in terms of whether batching is supported"):
        _complete(backend, source, text, config_from)


def test_listed_outputs_are_completed_and_others_left_out(backend, model_link, tf_models, config_from):
    source = model_link("simple", tf_models.simple)
    config = _complete(backend, source, 'output [ { name: "OUTPUT1" } ]', config_from)
    assert [t.name for t in config.output] == ["OUTPUT1"]
    assert list(config.output[0].dims) == [16]


def test_signature_named_in_parameters(backend, model_link, tf_models, config_from):
    source = model_link("ids", tf_models.identities)
    text = 'parameters { key: "TF_SIGNATURE_DEF" value { string_value: "identity_bytes" } }'
    config = _complete(backend, source, text, config_from)
    assert config.input[0].data_type == ModelConfig().input.add(data_type="TYPE_STRING").data_type


def test_unknown_signature_and_tag(backend, model_link, tf_models, config_from):
    source = model_link("ids", tf_models.identities)
    with pytest.raises(ConfigError, match=r"no signature 'nope' .* \(signatures: identity_bool, "):
        _complete(backend, source, 'parameters { key: "TF_SIGNATURE_DEF" value { string_value: "nope" } }',
                  config_from)
    with pytest.raises(ConfigError, match=r"no MetaGraphDef has the tag 'gpu' \(tag sets: serve\)"):
        _complete(backend, source, 'parameters { key: "TF_GRAPH_TAG" value { string_value: "gpu" } }', config_from)


def test_scalar_tensors_cannot_be_auto_completed(backend, model_link, tf_models, config_from):
    with pytest.raises(ConfigError, match="the rank of model tensor 'INPUT0' is 0 which is not supported"):
        _complete(backend, model_link("scalar", tf_models.scalar), config_from=config_from)


def test_graphdef_is_not_auto_completed_and_a_graphdef_folder_gets_its_platform(
    backend, model_link, tf_models, config_from
):
    source = model_link("gd", tf_models.graphdef)
    config = _complete(backend, source, config_from=config_from)
    assert config.platform == "tensorflow_graphdef"
    assert config.default_model_filename == "model.graphdef"
    assert not len(config.input) and not len(config.output)


def test_missing_model_leaves_the_config_alone(backend, tmp_path, config_from):
    from tritium import ModelSource

    source = ModelSource("m", 1, tmp_path, tmp_path / "1", tmp_path / "1" / "model.savedmodel")
    assert _complete(backend, source, "max_batch_size: 2", config_from).max_batch_size == 2


# ------------------------------------------------------------------------------------- validation
def _signature(*inputs, outputs=None):
    infos = tuple(TensorInfo(name, f"{name}:0", tf_type, dims) for name, tf_type, dims in inputs)
    outs = infos if outputs is None else tuple(TensorInfo(n, f"{n}:0", t, d) for n, t, d in outputs)
    return ModelSignature(infos, tuple(TensorInfo(f"OUT_{i.name}", i.tensor_name, i.tf_type, i.dims) for i in outs))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('input [ { name: "X" data_type: TYPE_INT32 dims: [ 4 ] } ]',
         "unexpected inference input 'X', allowed inputs are: A"),
        ('input [ { name: "A" data_type: TYPE_INT64 dims: [ 4 ] } ]',
         "unable to load model 'm', configuration expects datatype TYPE_INT64 for input 'A', model provides "
         "TYPE_FP32"),
        ('input [ { name: "A" data_type: TYPE_FP32 dims: [ 5 ] } ]',
         "model 'm', tensor 'A': the model expects 2 dimensions (shape [-1,4]) but the model configuration "
         "specifies 2 dimensions (an initial batch dimension because max_batch_size > 0"),
        ('input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 4 ] } ]',
         "unable to load model 'm', configuration expects 2 inputs, model provides 1"),
        ('input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] } ] '
         'output [ { name: "OUT_B" data_type: TYPE_FP32 dims: [ 4 ] } ]',
         "unexpected inference output 'OUT_B', allowed outputs are: OUT_A"),
    ],
)
def test_validation_messages(config_from, text, message):
    config = config_from(f'name: "m" max_batch_size: 4 {text}')
    with pytest.raises(ConfigError) as error:
        validate(config, _signature(("A", 1, (-1, 4))), model_name="m")
    assert message in str(error.value)


def test_sequence_controls_must_be_model_inputs(config_from):
    text = """name: "m" max_batch_size: 4 input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] } ]
        sequence_batching { control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START
          fp32_false_true: [ 0, 1 ] } ] } ] }"""
    with pytest.raises(ConfigError, match="configuration specified sequence control 'START', but model does not"):
        validate(config_from(text), _signature(("A", 1, (-1, 4))), model_name="m")


def test_unsupported_tensorflow_type(config_from):
    with pytest.raises(ConfigError, match="has TensorFlow type DT_BFLOAT16, which has no Triton datatype"):
        auto_complete(config_from('name: "m"'), _signature(("A", 14, (-1, 2))), model_name="m",
                      default_max_batch_size=4)


# ----------------------------------------------------------------------------------------- property
tensor_dims = st.one_of(
    st.lists(st.sampled_from([-1, 1, 3]), min_size=1, max_size=3).map(lambda d: (-1, *d[1:])),
    st.lists(st.sampled_from([-1, 1, 3]), min_size=1, max_size=3).map(tuple),
)


@st.composite
def signatures(draw):
    count = draw(st.integers(1, 3))
    types = st.sampled_from(sorted(TF_TO_TRITON))
    inputs = tuple(TensorInfo(f"IN{i}", f"in{i}:0", draw(types), draw(tensor_dims)) for i in range(count))
    outputs = tuple(TensorInfo(f"OUT{i}", f"out{i}:0", draw(types), draw(tensor_dims)) for i in range(count))
    return ModelSignature(inputs, outputs)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(signatures(), st.sampled_from([0, 1, 8]), st.booleans(), st.integers(0, 8))
def test_auto_complete_keeps_what_is_set_and_is_idempotent(signature, max_batch_size, list_first_input, default):
    config = ModelConfig(name="m", max_batch_size=max_batch_size)
    if list_first_input:
        config.input.add(name=signature.inputs[0].name)
    try:
        completed = auto_complete(config, signature, model_name="m", default_max_batch_size=default)
    except ConfigError as exc:
        assert str(exc)
        return
    assert completed.name == "m"
    if max_batch_size:
        assert completed.max_batch_size == max_batch_size
    if list_first_input:
        assert completed.input[0].name == signature.inputs[0].name
    assert auto_complete(completed, signature, model_name="m", default_max_batch_size=default) == completed
    assert {t.name for t in completed.input} == {i.name for i in signature.inputs}
    assert all(len(t.dims) for t in (*completed.input, *completed.output))
    if completed.max_batch_size > 0:
        assert signature.batchable
