"""Executing ONNX models: the datatype matrix, requested outputs, strings, reshapes, external weights, errors."""

from __future__ import annotations

import threading
import time

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest

from tritium import Batch, DataType, FailureReason, StatusCode, TritiumError


def _batch(inputs, outputs, batch_size=None):
    size = batch_size if batch_size is not None else next(iter(inputs.values())).shape[0]
    return Batch(dict(inputs), frozenset(outputs), (), size)


def _sample(datatype: DataType, shape) -> np.ndarray:
    rng = np.random.default_rng(3)
    if datatype is DataType.BYTES:
        items = [f"text-{i}-é".encode() for i in range(int(np.prod(shape)))]
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(shape)
    if datatype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool)
    if datatype in (DataType.FP16, DataType.FP32, DataType.FP64, DataType.BF16):
        return rng.standard_normal(size=shape).astype(datatype.numpy_dtype)
    info = np.iinfo(datatype.numpy_dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=datatype.numpy_dtype, endpoint=True)


@pytest.mark.parametrize("wire", ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                  "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"])
def test_identity_round_trips_every_datatype(onnx_graphs, model_writer, load, wire):
    datatype = DataType(wire)
    source = model_writer(f"identity_{wire.lower()}", onnx_graphs.identity(onnx_graphs.ELEM_TYPES[wire]))
    _, instance = load(source)
    x = _sample(datatype, (3, 5))
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"]
    assert out.shape == (3, 5)
    assert out.dtype == datatype.numpy_dtype
    if datatype is DataType.BYTES:
        assert all(isinstance(v, bytes) for v in out.ravel())
        assert out.tolist() == x.tolist()
    else:
        assert out.tobytes() == x.tobytes()


def test_bf16_keeps_exact_bits(onnx_graphs, model_writer, load):
    source = model_writer("bf16", onnx_graphs.identity(onnx_graphs.TensorProto.BFLOAT16))
    _, instance = load(source)
    words = np.array([[0x0000, 0x8000, 0x3F80, 0x7F80, 0xFF80, 0x7FC1, 0x0001]], dtype=np.uint16)
    x = words.view(ml_dtypes.bfloat16)
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"]
    np.testing.assert_array_equal(out.view(np.uint16), words)


def test_only_requested_outputs_are_returned(onnx_graphs, model_writer, load):
    source = model_writer("simple", onnx_graphs.add_sub())
    _, instance = load(source)
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int32)
    both = instance.execute(_batch({"INPUT0": a, "INPUT1": b}, {"OUTPUT0", "OUTPUT1"}))
    np.testing.assert_array_equal(both["OUTPUT0"], a + b)
    np.testing.assert_array_equal(both["OUTPUT1"], a - b)
    only = instance.execute(_batch({"INPUT0": a, "INPUT1": b}, {"OUTPUT1"}))
    assert set(only) == {"OUTPUT1"}
    np.testing.assert_array_equal(only["OUTPUT1"], a - b)


def test_no_requested_outputs_means_all(onnx_graphs, model_writer, load):
    source = model_writer("simple", onnx_graphs.add_sub())
    _, instance = load(source)
    a = np.ones((1, 16), np.int32)
    assert set(instance.execute(_batch({"INPUT0": a, "INPUT1": a}, set()))) == {"OUTPUT0", "OUTPUT1"}


def test_runtime_failure_is_internal_with_onnx_runtimes_message(onnx_graphs, model_writer, load):
    """Text that is not a number makes the string model's Cast fail: INTERNAL, as Triton reports it."""
    _, instance = load(model_writer("simple_string", onnx_graphs.string_add_sub()))
    x = np.array([[b"seven"] * 16], dtype=object)
    with pytest.raises(TritiumError) as info:
        instance.execute(_batch({"INPUT0": x, "INPUT1": x}, {"OUTPUT0"}))
    assert info.value.code is StatusCode.INTERNAL
    assert info.value.message.startswith("onnx runtime error 6: ")
    assert "Cast" in info.value.message
    assert info.value.reason is FailureReason.BACKEND


def test_unknown_requested_output_is_invalid_arg(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("simple", onnx_graphs.add_sub()))
    a = np.ones((1, 16), np.int32)
    with pytest.raises(TritiumError) as info:
        instance.execute(_batch({"INPUT0": a, "INPUT1": a}, {"NOPE"}))
    assert info.value.code is StatusCode.INVALID_ARG
    assert "NOPE" in info.value.message


# -------------------------------------------------------------------------------------------- strings
def test_string_model_computes_on_decimal_text(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("simple_string", onnx_graphs.string_add_sub()))
    a = np.array([[str(i).encode() for i in range(16)]], dtype=object)
    b = np.array([[b"1"] * 16], dtype=object)
    out = instance.execute(_batch({"INPUT0": a, "INPUT1": b}, {"OUTPUT0", "OUTPUT1"}))
    assert out["OUTPUT0"].dtype == object
    assert out["OUTPUT0"].tolist() == [[str(i + 1).encode() for i in range(16)]]
    assert out["OUTPUT1"].tolist() == [[str(i - 1).encode() for i in range(16)]]


def test_strings_are_utf8_on_both_sides(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("s", onnx_graphs.identity(onnx_graphs.TensorProto.STRING)))
    x = np.array([["ünïcödé".encode(), b"", "日本".encode()]], dtype=object)
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"]
    assert out.tolist() == x.tolist()
    assert all(type(v) is bytes for v in out.ravel())


def test_str_elements_are_accepted_too(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("s", onnx_graphs.identity(onnx_graphs.TensorProto.STRING)))
    x = np.array([["a", "b"]], dtype=object)
    assert instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"].tolist() == [[b"a", b"b"]]


def test_non_utf8_bytes_are_a_clear_invalid_arg(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("s", onnx_graphs.identity(onnx_graphs.TensorProto.STRING)))
    x = np.array([[b"fine", b"\xff\xfe"]], dtype=object)
    with pytest.raises(TritiumError) as info:
        instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))
    assert info.value.code is StatusCode.INVALID_ARG
    assert "input 'INPUT0' element 1 is not valid UTF-8" in info.value.message


# ---------------------------------------------------------------------------------- shapes, reshapes
def test_non_batching_model(onnx_graphs, model_writer, load):
    _, instance = load(model_writer("nb", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT, shape=(2, 3))))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}, 0))["OUTPUT0"], x)


def test_batch_only_tensor_is_served_with_dims_one(onnx_graphs, model_writer, load):
    """A model tensor of shape [batch] auto-completes to dims [1] + reshape []: requests carry [B, 1]."""
    g = onnx_graphs
    _, instance = load(model_writer("v", g.identity(g.TensorProto.FLOAT, shape=("batch",))))
    x = np.array([[1.0], [2.0], [3.0]], np.float32)
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"]
    assert out.shape == (3, 1)
    np.testing.assert_array_equal(out, x)


def test_scalar_tensor_is_served_with_dims_one(onnx_graphs, model_writer, load):
    g = onnx_graphs
    _, instance = load(model_writer("scalar", g.identity(g.TensorProto.INT64, shape=())))
    x = np.array([42], np.int64)
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}, 0))["OUTPUT0"]
    assert out.shape == (1,) and out.tolist() == [42]


def test_config_reshape_is_applied_both_ways(onnx_graphs, model_writer, load, config_from):
    g = onnx_graphs
    source = model_writer("r", g.identity(g.TensorProto.FLOAT, shape=("batch", 2, 3)))
    text = """
        max_batch_size: 4
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 6 ] reshape { shape: [ 2, 3 ] } } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 6 ] reshape { shape: [ 2, 3 ] } } ]
    """
    _, instance = load(source, config_from(text))
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    out = instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"]
    assert out.shape == (2, 6)
    np.testing.assert_array_equal(out, x)


def test_external_weights_directory_model(onnx_graphs, model_writer, load):
    g = onnx_graphs
    weights = np.linspace(-1.0, 1.0, 64, dtype=np.float32)
    model = g.make_model(
        [g.helper.make_node("Add", ["INPUT0", "W"], ["OUTPUT0"])],
        [("INPUT0", g.TensorProto.FLOAT, ["batch", 64])],
        [("OUTPUT0", g.TensorProto.FLOAT, ["batch", 64])],
        initializers=[g.numpy_helper.from_array(weights, "W")],
    )
    source = model_writer("ext", model, external_data=True)
    assert (source.model_file / "weights.bin").stat().st_size == weights.nbytes
    config, instance = load(source)
    assert config.max_batch_size == 4
    x = np.ones((2, 64), np.float32)
    np.testing.assert_array_equal(instance.execute(_batch({"INPUT0": x}, {"OUTPUT0"}))["OUTPUT0"], x + weights)


def test_missing_model_file_is_unavailable(backend, tmp_path, config_from, placement):
    from tritium import ModelSource

    source = ModelSource("m", 1, tmp_path, tmp_path / "1", tmp_path / "1" / "model.onnx")
    with pytest.raises(TritiumError) as info:
        backend.create_instance(source, config_from(), placement(0))
    assert info.value.code is StatusCode.UNAVAILABLE
    assert "unable to find" in info.value.message


def test_broken_model_file_is_an_error(backend, model_writer, onnx_graphs, config_from, placement):
    source = model_writer("m", onnx_graphs.add_sub())
    source.model_file.write_bytes(b"not an onnx model")
    with pytest.raises(TritiumError, match=r"failed to load .*onnx runtime error"):
        backend.create_instance(source, config_from(), placement(0))


# -------------------------------------------------------------------------------------- concurrency
def test_execute_releases_the_gil(onnx_graphs, model_writer, load, config_from):
    """While one thread runs a slow model, Python code keeps running on another thread: ONNX Runtime
    releases the GIL, so instances of a model execute in parallel on the kernel's worker threads."""
    g = onnx_graphs
    weights = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) / 16.0
    nodes, previous = [], "INPUT0"
    for i in range(30):
        nodes.append(g.helper.make_node("MatMul", [previous, "W"], [f"h{i}"]))
        previous = f"h{i}"
    nodes.append(g.helper.make_node("Identity", [previous], ["OUTPUT0"]))
    model = g.make_model(
        nodes,
        [("INPUT0", g.TensorProto.FLOAT, ["batch", 256])],
        [("OUTPUT0", g.TensorProto.FLOAT, ["batch", 256])],
        initializers=[g.numpy_helper.from_array(weights, "W")],
    )
    config = config_from('parameters { key: "intra_op_thread_count" value { string_value: "1" } }')
    _, instance = load(model_writer("slow", model), config)
    batch = _batch({"INPUT0": np.ones((256, 256), np.float32)}, {"OUTPUT0"})
    done = threading.Event()

    def run() -> None:
        for _ in range(3):
            instance.execute(batch)
        done.set()

    worker = threading.Thread(target=run)
    ticks = 0
    worker.start()
    started = time.perf_counter()
    while not done.is_set():
        ticks += 1
    elapsed = time.perf_counter() - started
    worker.join(timeout=60)
    assert elapsed > 0.01, "the model ran too fast to tell"
    assert ticks > 1000, f"the main thread made only {ticks} steps in {elapsed:.3f}s: the GIL was held"


def test_ort_version_is_recent_enough():
    major, minor = (int(p) for p in ort.__version__.split(".")[:2])
    assert (major, minor) >= (1, 18)


def test_gpu_support_follows_the_installed_onnx_runtime_build():
    """Groups without a kind go to a GPU only with ONNX Runtime's CUDA provider (the CPU build keeps them on
    the CPU, so a GPU machine with the CPU build still loads every model)."""
    from tritium_backend_onnx._backend import OnnxBackend

    assert OnnxBackend().supports_gpu() is ("CUDAExecutionProvider" in ort.get_available_providers())
