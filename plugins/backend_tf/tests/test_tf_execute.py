"""Executing TensorFlow models: every datatype, strings as raw bytes, batching, GraphDefs, signatures and
tags, variables, init ops, session sharing, devices and errors. Results are compared with values computed
here (identity, sums) or with TensorFlow run directly."""

from __future__ import annotations

import numpy as np
import pytest
from tritium_backend_tf import TensorFlowBackend

from tritium import ConfigError, InstancePlacement, StatusCode, TritiumError
from tritium.testing.builders import batch_of, build_request

WIRE_TYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
              "FP64", "BYTES"]


def _sample(wire: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(7)
    if wire == "BYTES":
        count = int(np.prod(shape))
        values = [bytes(rng.integers(0, 256, size=int(rng.integers(0, 6)), dtype=np.uint8)) for _ in range(count)]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    if wire == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    if wire.startswith("FP"):
        return (rng.integers(-64, 64, size=shape) / 4).astype({"FP16": np.float16, "FP32": np.float32,
                                                               "FP64": np.float64}[wire])
    dtype = np.dtype(wire.lower())
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _run(config, instance, inputs, requested=()):
    from tritium import Batch

    batch_size = next(iter(inputs.values())).shape[0] if config.max_batch_size > 0 else 0
    return instance.execute(Batch(inputs=inputs, requested_outputs=frozenset(requested), requests=(),
                                  batch_size=batch_size))


@pytest.mark.parametrize("wire", WIRE_TYPES)
def test_identity_for_every_datatype(load, model_link, tf_models, config_from, wire):
    text = f'parameters {{ key: "TF_SIGNATURE_DEF" value {{ string_value: "identity_{wire.lower()}" }} }}'
    config, instance = load(model_link("ids", tf_models.identities), config_from(text))
    assert config.input[0].data_type == config.output[0].data_type
    assert config.max_batch_size == 4
    values = _sample(wire, (3, 5))
    (out,) = _run(config, instance, {"INPUT0": values}).values()
    assert out.shape == values.shape
    if wire == "BYTES":
        assert out.dtype == object and list(out.ravel()) == list(values.ravel())
    else:
        assert out.dtype == values.dtype and out.tobytes() == values.tobytes()


def test_bytes_that_are_not_text_pass_through(load, model_link, tf_models, config_from):
    text = 'parameters { key: "TF_SIGNATURE_DEF" value { string_value: "identity_bytes" } }'
    config, instance = load(model_link("ids", tf_models.identities), config_from(text))
    values = np.array([[b"\xff\xfe\x00", b"", "é".encode(), b"a" * 1000]], dtype=object)
    (out,) = _run(config, instance, {"INPUT0": values}).values()
    assert list(out.ravel()) == list(values.ravel())


def test_simple_savedmodel_batches(load, model_link, tf_models):
    config, instance = load(model_link("simple", tf_models.simple))
    a = np.arange(48, dtype=np.int32).reshape(3, 16)
    b = np.full((3, 16), 5, dtype=np.int32)
    out = _run(config, instance, {"INPUT0": a, "INPUT1": b})
    np.testing.assert_array_equal(out["OUTPUT0"], a + b)
    np.testing.assert_array_equal(out["OUTPUT1"], a - b)
    only = _run(config, instance, {"INPUT0": a, "INPUT1": b}, requested=["OUTPUT1"])
    assert list(only) == ["OUTPUT1"]


def test_unknown_requested_output_is_invalid_arg(load, model_link, tf_models):
    config, instance = load(model_link("simple", tf_models.simple))
    a = np.zeros((1, 16), np.int32)
    with pytest.raises(TritiumError) as error:
        _run(config, instance, {"INPUT0": a, "INPUT1": a}, requested=["NOPE"])
    assert error.value.code is StatusCode.INVALID_ARG


def test_variables_are_restored(load, model_link, tf_models):
    config, instance = load(model_link("variable", tf_models.variable))
    (out,) = _run(config, instance, {"INPUT0": np.ones((2, 4), np.float32)}).values()
    np.testing.assert_array_equal(out, [[1, 2, 3, 4], [1, 2, 3, 4]])


def test_non_batching_model(load, model_link, tf_models):
    config, instance = load(model_link("nobatch", tf_models.identities_nobatch))
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    (out,) = _run(config, instance, {"INPUT0": values}).values()
    np.testing.assert_array_equal(out, values)


def test_scalar_model_with_a_config(load, model_link, tf_models, config_from):
    text = """
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
    """
    config, instance = load(model_link("scalar", tf_models.scalar), config_from(text))
    (out,) = _run(config, instance, {"INPUT0": np.array([1.5], np.float32)}).values()
    assert out.shape == (1,) and out[0] == 3.0


@pytest.mark.parametrize(("tag", "signature", "expected"), [
    (None, None, 2.0), ("serve1", None, 10.0), ("serve", "doubled", 4.0), ("serve1", "doubled", 20.0),
])
def test_graph_tag_and_signature_parameters(load, model_link, tf_models, config_from, tag, signature, expected):
    text = ""
    if tag:
        text += f'parameters {{ key: "TF_GRAPH_TAG" value {{ string_value: "{tag}" }} }} '
    if signature:
        text += f'parameters {{ key: "TF_SIGNATURE_DEF" value {{ string_value: "{signature}" }} }}'
    config, instance = load(model_link("tagged", tf_models.tagged), config_from(text))
    (out,) = _run(config, instance, {"INPUT0": np.ones((1, 3), np.float32)}).values()
    np.testing.assert_array_equal(out, np.full((1, 3), expected, np.float32))


GRAPHDEF_CONFIG = """
platform: "tensorflow_graphdef"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
         { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
"""


def test_graphdef(load, model_link, tf_models, config_from):
    config, instance = load(model_link("gd", tf_models.graphdef), config_from(GRAPHDEF_CONFIG))
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    out = _run(config, instance, {"INPUT0": a, "INPUT1": a})
    np.testing.assert_array_equal(out["OUTPUT0"], 2 * a)
    np.testing.assert_array_equal(out["OUTPUT1"], 0 * a)


def test_graphdef_outputs_by_tensor_name(load, model_link, tf_models, config_from):
    text = GRAPHDEF_CONFIG.replace('name: "OUTPUT1"', 'name: "sub:0"')
    config, instance = load(model_link("gd", tf_models.graphdef), config_from(text))
    a = np.ones((1, 16), np.int32)
    assert set(_run(config, instance, {"INPUT0": a, "INPUT1": a})) == {"OUTPUT0", "sub:0"}


@pytest.mark.parametrize(("change", "message"), [
    (('name: "OUTPUT1"', 'name: "NOPE"'), "unexpected inference output 'NOPE', allowed outputs are: a node or tensor"),
    (('name: "INPUT1"', 'name: "add"'), "unexpected inference input 'add', allowed inputs are: INPUT0, INPUT1"),
    (("data_type: TYPE_INT32 dims: [ 16 ] },\n", "data_type: TYPE_FP32 dims: [ 16 ] },\n"),
     "configuration expects datatype TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32"),
])
def test_graphdef_config_errors(load, model_link, tf_models, config_from, change, message):
    with pytest.raises(ConfigError) as error:
        load(model_link("gd", tf_models.graphdef), config_from(GRAPHDEF_CONFIG.replace(*change, 1)))
    assert message in str(error.value)


def test_graphdef_folder_with_the_kernels_default_platform(backend, model_link, tf_models, config_from):
    """With auto-complete off, a config naming no platform reaches the backend with the backend's first
    platform (tensorflow_savedmodel); a version folder holding only model.graphdef still loads as a GraphDef."""
    from tritium.config import normalize_model_config

    source = model_link("gd", tf_models.graphdef)
    source = type(source)(source.name, source.version, source.model_dir, source.version_dir,
                          source.version_dir / "model.savedmodel")  # what the kernel passes
    text = GRAPHDEF_CONFIG.replace('platform: "tensorflow_graphdef"', 'platform: "tensorflow_savedmodel"')
    config = normalize_model_config(config_from(text), model_name="gd", source="t")
    instance = backend.create_instance(source, config, InstancePlacement("i", "CPU", 0, "g", 0))
    try:
        a = np.ones((1, 16), np.int32)
        assert _run(config, instance, {"INPUT0": a, "INPUT1": a})["OUTPUT0"][0, 0] == 2
    finally:
        instance.close()


def test_graphdef_without_a_config_is_refused(load, model_link, tf_models):
    with pytest.raises(ConfigError, match="a GraphDef carries no signature"):
        load(model_link("gd", tf_models.graphdef))


INIT_OPS_CONFIG = """
platform: "tensorflow_graphdef"
max_batch_size: 4
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 2 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 2 ] } ]
"""


def test_init_ops_file_initializes_a_graphdef(load, model_link, tf_models, config_from, init_ops_json):
    source = model_link("init", tf_models.init_ops_graphdef)
    config, instance = load(source, config_from(INIT_OPS_CONFIG))
    with pytest.raises(TritiumError) as error:  # the variable was never initialized
        _run(config, instance, {"INPUT0": np.ones((1, 2), np.int32)})
    assert error.value.code is StatusCode.INTERNAL and "tensorflow error" in error.value.message
    init_ops_json(source.version_dir, ["init"])
    text = INIT_OPS_CONFIG + 'parameters { key: "TF_INIT_OPS_FILE" value { string_value: "init_ops.json" } }'
    config, instance = load(source, config_from(text))
    (out,) = _run(config, instance, {"INPUT0": np.ones((1, 2), np.int32)}).values()
    np.testing.assert_array_equal(out, [[6, 6]])


def test_sessions_are_shared_up_to_max_session_share_count(model_link, tf_models, config_from):
    from tritium.config import normalize_model_config

    backend = TensorFlowBackend({})
    source = model_link("simple", tf_models.simple)
    config = config_from('name: "simple" backend: "tensorflow" platform: "tensorflow_savedmodel" '
                         'parameters { key: "MAX_SESSION_SHARE_COUNT" value { string_value: "2" } }')
    config = normalize_model_config(backend.auto_complete_config(source, config), model_name="simple", source="t")
    placements = [InstancePlacement(f"i{n}", "CPU", 0, "g", n) for n in range(3)]
    instances = [backend.create_instance(source, config, p) for p in placements]
    sessions = [instance._shared.session for instance in instances]
    assert sessions[0] is sessions[1] and sessions[2] is not sessions[0]
    a = np.ones((1, 16), np.int32)
    for instance in instances:
        assert _run(config, instance, {"INPUT0": a, "INPUT1": a})["OUTPUT0"][0, 0] == 2
    instances[0].close()
    assert _run(config, instances[1], {"INPUT0": a, "INPUT1": a})["OUTPUT0"][0, 0] == 2  # still open
    for instance in instances:
        instance.close()
    assert backend.sessions_open() == 0
    again = backend.create_instance(source, config, placements[0])  # never reuses a closed session
    assert _run(config, again, {"INPUT0": a, "INPUT1": a})["OUTPUT0"][0, 0] == 2
    again.close()


def test_a_changed_model_file_gets_a_new_session(model_link, tf_models, config_from, tmp_path):
    """With sessions shared, a reload after the model changed on disk (poll mode) must not reuse the previous
    version's session."""
    import os
    import shutil

    from tritium.config import normalize_model_config

    backend = TensorFlowBackend({})
    copy = tmp_path / "copy.graphdef"
    shutil.copy(tf_models.graphdef, copy)
    source = model_link("gd", copy)
    text = GRAPHDEF_CONFIG + 'parameters { key: "MAX_SESSION_SHARE_COUNT" value { string_value: "4" } }'
    config = normalize_model_config(config_from('name: "gd" ' + text), model_name="gd", source="t")
    first = backend.create_instance(source, config, InstancePlacement("i0", "CPU", 0, "g", 0))
    os.utime(copy, ns=(1, 1))  # the file "changed"
    second = backend.create_instance(source, config, InstancePlacement("i1", "CPU", 0, "g", 1))
    assert second._shared.session is not first._shared.session
    first.close()
    second.close()


def test_kit_builders_batch_through_the_instance(load, model_link, tf_models):
    config, instance = load(model_link("simple", tf_models.simple))
    requests = [build_request(config, batch_size=n, rng=np.random.default_rng(n)) for n in (1, 2)]
    batch = batch_of(config, requests)
    out = instance.execute(batch)
    expected = np.concatenate([r.inputs["INPUT0"].data + r.inputs["INPUT1"].data for r in requests])
    np.testing.assert_array_equal(out["OUTPUT0"], expected)


def test_missing_model_is_unavailable(backend, tmp_path, config_from):
    from tritium import ModelSource

    version_dir = tmp_path / "m" / "1"
    version_dir.mkdir(parents=True)
    source = ModelSource("m", 1, version_dir.parent, version_dir, version_dir / "model.savedmodel")
    config = config_from('name: "m" platform: "tensorflow_savedmodel"')
    with pytest.raises(TritiumError) as error:
        backend.create_instance(source, config, InstancePlacement("i", "CPU", 0, "g", 0))
    assert error.value.code is StatusCode.UNAVAILABLE and "unable to find" in error.value.message


def test_corrupt_savedmodel_is_a_config_error(load, model_link, tmp_path):
    broken = tmp_path / "broken.savedmodel"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\x00\xffnot a model" * 8)
    with pytest.raises(ConfigError, match="unable to parse SavedModel"):
        load(model_link("broken", broken))


def test_gpu_instance_on_tensorflow_without_gpus(backend, model_link, tf_models, config_from):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this TensorFlow sees a GPU")
    source = model_link("simple", tf_models.simple)
    config = backend.auto_complete_config(source, config_from('name: "simple" platform: "tensorflow_savedmodel"'))
    with pytest.raises(TritiumError) as error:
        backend.create_instance(source, config, InstancePlacement("g0", "GPU", 0, "g", 0))
    assert error.value.code is StatusCode.UNAVAILABLE
    assert "pip install 'tritium-backend-tf[gpu]'" in error.value.message


@pytest.mark.gpu
def test_gpu_instance_executes_on_the_gpu(backend, model_link, tf_models, config_from):
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("needs TensorFlow with CUDA and a GPU")
    from tritium.config import normalize_model_config

    source = model_link("simple", tf_models.simple)
    config = backend.auto_complete_config(source, config_from('name: "simple" platform: "tensorflow_savedmodel"'))
    config = normalize_model_config(config, model_name="simple", source="t", gpu_count=1)
    instance = backend.create_instance(source, config, InstancePlacement("g0", "GPU", 0, "g", 0))
    try:
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        out = _run(config, instance, {"INPUT0": a, "INPUT1": a})
        np.testing.assert_array_equal(out["OUTPUT0"], 2 * a)
        devices = {op.device for op in instance._shared.session.graph.get_operations() if op.device}
        assert any("GPU:0" in device for device in devices), devices
    finally:
        instance.close()
