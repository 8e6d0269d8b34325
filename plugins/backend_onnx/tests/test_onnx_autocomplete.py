"""Auto-complete of model configurations from ONNX graphs, field by field, and the contradiction checks."""

from __future__ import annotations

import pytest
from tritium_backend_onnx import OnnxBackend

from tritium import ConfigError, DataType


def _types(tensors):
    return [(t.name, DataType.from_config_enum(t.data_type), list(t.dims)) for t in tensors]


def test_empty_config_of_a_batchable_model_is_filled_from_the_graph(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.add_sub())
    config = backend.auto_complete_config(source, config_from())
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert _types(config.input) == [("INPUT0", DataType.INT32, [16]), ("INPUT1", DataType.INT32, [16])]
    assert _types(config.output) == [("OUTPUT0", DataType.INT32, [16]), ("OUTPUT1", DataType.INT32, [16])]
    assert not any(t.HasField("reshape") for t in (*config.input, *config.output))


def test_auto_complete_returns_a_copy(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    original = config_from()
    completed = backend.auto_complete_config(source, original)
    assert completed is not original
    assert len(original.input) == 0 and original.max_batch_size == 0


@pytest.mark.parametrize("value,expected", [("1", 1), ("16", 16), ("0", 0)])
def test_default_max_batch_size_comes_from_the_backend_config(
    onnx_graphs, model_writer, config_from, value, expected
):
    backend = OnnxBackend({"default-max-batch-size": value})
    source = model_writer("m", onnx_graphs.add_sub())
    config = backend.auto_complete_config(source, config_from())
    assert config.max_batch_size == expected
    # dynamic batching only when the filled max_batch_size is above 1
    assert config.HasField("dynamic_batching") == (expected > 1)
    # with max_batch_size 0 the batch dimension stays in dims
    assert list(config.input[0].dims) == ([16] if expected > 0 else [-1, 16])


def test_bad_default_max_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="default-max-batch-size"):
        OnnxBackend({"default-max-batch-size": "many"})


def test_explicit_max_batch_size_is_kept(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    config = backend.auto_complete_config(source, config_from("max_batch_size: 32"))
    assert config.max_batch_size == 32
    assert config.HasField("dynamic_batching")


def test_max_batch_size_one_gets_no_dynamic_batching(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    config = backend.auto_complete_config(source, config_from("max_batch_size: 1"))
    assert config.max_batch_size == 1
    assert config.WhichOneof("scheduling_choice") is None


def test_a_named_scheduler_is_kept(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    config = backend.auto_complete_config(
        source, config_from("sequence_batching { max_sequence_idle_microseconds: 5000 }")
    )
    assert config.WhichOneof("scheduling_choice") == "sequence_batching"
    assert config.sequence_batching.max_sequence_idle_microseconds == 5000
    dynamic = backend.auto_complete_config(
        source, config_from("dynamic_batching { max_queue_delay_microseconds: 100 }")
    )
    assert dynamic.dynamic_batching.max_queue_delay_microseconds == 100


def test_non_batchable_model_keeps_max_batch_size_zero_and_full_dims(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT, shape=(2, 3)))
    config = backend.auto_complete_config(source, config_from())
    assert config.max_batch_size == 0
    assert config.WhichOneof("scheduling_choice") is None
    assert _types(config.input) == [("INPUT0", DataType.FP32, [2, 3])]
    assert _types(config.output) == [("OUTPUT0", DataType.FP32, [2, 3])]


def test_non_batchable_model_with_max_batch_size_is_an_error(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT, shape=(2, 3)))
    with pytest.raises(ConfigError, match="model does not support batching while non-zero max_batch_size"):
        backend.auto_complete_config(source, config_from("max_batch_size: 8"))


def test_one_fixed_first_dimension_makes_the_model_non_batchable(
    backend, onnx_graphs, model_writer, config_from
):
    g = onnx_graphs
    model = g.make_model(
        [g.helper.make_node("Identity", ["A"], ["X"]), g.helper.make_node("Identity", ["B"], ["Y"])],
        [("A", g.TensorProto.FLOAT, ["batch", 2]), ("B", g.TensorProto.FLOAT, [1, 2])],
        [("X", g.TensorProto.FLOAT, ["batch", 2]), ("Y", g.TensorProto.FLOAT, [1, 2])],
    )
    config = backend.auto_complete_config(model_writer("m", model), config_from())
    assert config.max_batch_size == 0
    assert _types(config.input) == [("A", DataType.FP32, [-1, 2]), ("B", DataType.FP32, [1, 2])]


def test_unknown_and_symbolic_dims_become_minus_one(backend, onnx_graphs, model_writer, config_from):
    g = onnx_graphs
    model = g.make_model(
        [g.helper.make_node("Identity", ["A"], ["X"])],
        [("A", g.TensorProto.FLOAT, ["batch", "height", 5])],
        [("X", g.TensorProto.FLOAT, ["batch", "height", 5])],
    )
    config = backend.auto_complete_config(model_writer("m", model), config_from())
    assert list(config.input[0].dims) == [-1, 5]
    assert list(config.output[0].dims) == [-1, 5]


def test_scalar_tensors_get_dims_one(backend, onnx_graphs, model_writer, config_from):
    g = onnx_graphs
    model = g.make_model(
        [g.helper.make_node("Identity", ["A"], ["X"])],
        [("A", g.TensorProto.FLOAT, [])],
        [("X", g.TensorProto.FLOAT, [])],
    )
    config = backend.auto_complete_config(model_writer("m", model), config_from())
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [1] and not config.input[0].HasField("reshape")
    assert list(config.output[0].dims) == [1] and not config.output[0].HasField("reshape")


def test_batch_only_tensors_get_dims_one_and_an_empty_reshape(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT, shape=("batch",)))
    config = backend.auto_complete_config(source, config_from())
    assert config.max_batch_size == 4
    for tensor in (config.input[0], config.output[0]):
        assert list(tensor.dims) == [1]
        assert tensor.HasField("reshape") and list(tensor.reshape.shape) == []


def test_config_with_inputs_and_outputs_is_not_touched(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    text = """
        max_batch_size: 0
        input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1, 16 ] },
                { name: "INPUT1" data_type: TYPE_INT32 dims: [ -1, 16 ] } ]
        output [ { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ -1, 16 ] } ]
    """
    config = config_from(text)
    completed = backend.auto_complete_config(source, config)
    assert completed == config  # no max_batch_size, no dynamic batching, OUTPUT0 not added


def test_missing_outputs_are_filled_and_inputs_kept(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    text = """
        max_batch_size: 2
        input [ { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] },
                { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
    """
    config = backend.auto_complete_config(source, config_from(text))
    assert [t.name for t in config.input] == ["INPUT1", "INPUT0"]
    assert _types(config.output) == [("OUTPUT0", DataType.INT32, [16]), ("OUTPUT1", DataType.INT32, [16])]
    assert config.max_batch_size == 2
    assert config.HasField("dynamic_batching")


def test_listed_tensors_without_type_or_dims_are_filled(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.add_sub())
    text = """
        max_batch_size: 8
        input [ { name: "INPUT0" }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_INT32 } ]
    """
    config = backend.auto_complete_config(source, config_from(text))
    assert _types(config.input) == [("INPUT0", DataType.INT32, [16]), ("INPUT1", DataType.INT32, [16])]
    assert _types(config.output) == [("OUTPUT0", DataType.INT32, [16])]


@pytest.mark.parametrize("wire", ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                  "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"])
def test_every_datatype_is_auto_completed(backend, onnx_graphs, model_writer, config_from, wire):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.ELEM_TYPES[wire]))
    config = backend.auto_complete_config(source, config_from())
    assert _types(config.input) == [("INPUT0", DataType(wire), [-1])]
    assert _types(config.output) == [("OUTPUT0", DataType(wire), [-1])]


def test_type_without_triton_datatype_is_a_config_error(backend, onnx_graphs, model_writer, config_from):
    model = onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT8E4M3FN)
    source = model_writer("m", model)
    with pytest.raises(ConfigError, match=r"tensor\(float8e4m3fn\).*'INPUT0'|'INPUT0'.*float8"):
        backend.auto_complete_config(source, config_from())


def test_missing_model_file_leaves_the_config_unchanged(backend, tmp_path, config_from):
    from tritium import ModelSource

    source = ModelSource("m", 1, tmp_path / "m", tmp_path / "m" / "1", tmp_path / "m" / "1" / "model.onnx")
    config = config_from('max_batch_size: 3 input [ { name: "X" } ]')
    assert backend.auto_complete_config(source, config) == config


def test_external_weights_directory_is_auto_completed(backend, onnx_graphs, model_writer, config_from):
    g = onnx_graphs
    weights = g.numpy_helper.from_array(__import__("numpy").ones((8,), dtype="float32"), "W")
    model = g.make_model(
        [g.helper.make_node("Add", ["INPUT0", "W"], ["OUTPUT0"])],
        [("INPUT0", g.TensorProto.FLOAT, ["batch", 8])],
        [("OUTPUT0", g.TensorProto.FLOAT, ["batch", 8])],
        initializers=[weights],
    )
    source = model_writer("m", model, external_data=True)
    assert source.model_file.is_dir()
    config = backend.auto_complete_config(source, config_from())
    assert _types(config.input) == [("INPUT0", DataType.FP32, [8])]


# --------------------------------------------------------------------------------------- contradictions
@pytest.mark.parametrize(
    "text,message",
    [
        (
            'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },'
            '        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]',
            "configuration expects datatype TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32",
        ),
        (
            'output [ { name: "OUTPUT1" data_type: TYPE_STRING dims: [ 16 ] } ]',
            "configuration expects datatype TYPE_STRING for output 'OUTPUT1', model provides TYPE_INT32",
        ),
        (
            'input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },'
            '        { name: "NOPE" data_type: TYPE_INT32 dims: [ 16 ] } ]',
            "unexpected inference input 'NOPE', allowed inputs are: INPUT0, INPUT1",
        ),
        (
            'output [ { name: "NOPE" data_type: TYPE_INT32 dims: [ 16 ] } ]',
            "unexpected inference output 'NOPE', allowed outputs are: OUTPUT0, OUTPUT1",
        ),
        (
            'input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]',
            "configuration expects 1 inputs, model provides 2",
        ),
        (
            'input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 8 ] },'
            '        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]',
            "tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the model configuration "
            "specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 followed by the "
            "explicit tensor shape, making complete shape [-1,8])",
        ),
        (
            'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16, 1 ] } ]',
            "tensor 'OUTPUT0': the model expects 2 dimensions (shape [-1,16]) but the model configuration "
            "specifies 3 dimensions",
        ),
        (
            'max_batch_size: 0 input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1, 16 ] },'
            '                          { name: "INPUT1" data_type: TYPE_INT32 dims: [ -1, 16 ] } ]'
            'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 3, 16 ] } ]',
            "tensor 'OUTPUT0': the model expects 2 dimensions (shape [-1,16]) but the model configuration "
            "specifies 2 dimensions (shape [3,16])",
        ),
    ],
)
def test_contradictions_name_the_tensor_and_the_mismatch(
    backend, onnx_graphs, model_writer, config_from, text, message
):
    source = model_writer("m", onnx_graphs.add_sub())
    if "max_batch_size" not in text:
        text = "max_batch_size: 8 " + text
    with pytest.raises(ConfigError) as info:
        backend.auto_complete_config(source, config_from(text))
    assert message in str(info.value)


def test_inputs_accept_a_fixed_dim_where_the_model_has_a_variable_one(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT))
    text = """
        max_batch_size: 4
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 7 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
    """
    config = config_from(text)
    assert backend.auto_complete_config(source, config) == config
    with pytest.raises(ConfigError, match="tensor 'OUTPUT0'"):
        backend.auto_complete_config(
            source, config_from(text.replace("dims: [ -1 ]", "dims: [ 7 ]"))
        )


def test_batching_config_for_a_model_without_batch_dimension_is_rejected(
    backend, onnx_graphs, model_writer, config_from
):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT, shape=(2, 3)))
    text = """
        max_batch_size: 4
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 3 ] } ]
    """
    with pytest.raises(ConfigError, match="first dimension must be -1; but shape expected by the model is"):
        backend.auto_complete_config(source, config_from(text))


def test_optional_input_of_a_batching_model_is_rejected(backend, onnx_graphs, model_writer, config_from):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT))
    text = """
        max_batch_size: 4
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] optional: true } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
    """
    with pytest.raises(ConfigError, match="configuration expects 0 inputs, model provides 1"):
        backend.auto_complete_config(source, config_from(text))


def test_contradictions_are_also_caught_when_auto_complete_is_off(
    backend, onnx_graphs, model_writer, config_from, placement
):
    source = model_writer("m", onnx_graphs.add_sub())
    text = """
        max_batch_size: 8
        input [ { name: "INPUT0" data_type: TYPE_INT64 dims: [ 16 ] },
                { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
    """
    with pytest.raises(ConfigError, match="TYPE_INT64 for input 'INPUT0', model provides TYPE_INT32"):
        backend.create_instance(source, config_from(text), placement(0))
