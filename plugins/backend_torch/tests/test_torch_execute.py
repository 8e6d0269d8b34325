"""TorchScript instances: every datatype, naming, batching, strings, parameters, devices and Triton's errors."""

from __future__ import annotations

import threading

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_backend_torch import TorchBackend

from tritium import Batch, ConfigError, DataType, InstancePlacement, StatusCode, TritiumError
from tritium.config import normalize_model_config

torch = pytest.importorskip("torch")

TENSOR_TYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                "FP64", "BF16"]


def config_type(wire: str) -> str:
    return "TYPE_STRING" if wire == "BYTES" else f"TYPE_{wire}"


def load(torch_models, tmp_path, kind, config_text, *, backend=None, placement=None, name="m"):
    backend = backend or TorchBackend({})
    source, config = torch_models.write_model(tmp_path, name, kind, config_text)
    config = normalize_model_config(backend.auto_complete_config(source, config), model_name=name, source=name)
    instance = backend.create_instance(source, config, placement or torch_models.cpu_placement(name=name))
    return instance


def run(instance, inputs, batch_size=0, outputs=()):
    return instance.execute(Batch(inputs, frozenset(outputs), (), batch_size))


def sample(wire: str, shape, seed=0):
    rng = np.random.default_rng(seed)
    datatype = DataType(wire)
    if datatype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool)
    if datatype in (DataType.FP16, DataType.FP32, DataType.FP64, DataType.BF16):
        return (rng.integers(-64, 64, size=shape) / 4.0).astype(datatype.numpy_dtype)
    info = np.iinfo(datatype.numpy_dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=datatype.numpy_dtype, endpoint=True)


# ---------------------------------------------------------------------------------------------- datatypes
@pytest.mark.parametrize("wire", TENSOR_TYPES)
def test_identity_per_datatype(torch_models, tmp_path, wire):
    instance = load(torch_models, tmp_path, "identity", f"""
        max_batch_size: 4
        input [ {{ name: "INPUT__0" data_type: {config_type(wire)} dims: [ -1 ] }} ]
        output [ {{ name: "OUTPUT__0" data_type: {config_type(wire)} dims: [ -1 ] }} ]
    """)
    x = sample(wire, (3, 5))
    out = run(instance, {"INPUT__0": x}, 3)["OUTPUT__0"]
    assert out.dtype == x.dtype and out.shape == x.shape
    assert out.tobytes() == x.tobytes()


def test_strings_round_trip_and_non_utf8_is_invalid_arg(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "strings", """
        input [ { name: "words" data_type: TYPE_STRING dims: [ -1 ] },
                { name: "scale" data_type: TYPE_INT64 dims: [ 1 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_STRING dims: [ -1 ] },
                 { name: "OUTPUT__1" data_type: TYPE_INT64 dims: [ -1 ] } ]
    """)
    words = np.array([b"hello", b"", "café".encode()], dtype=object)
    out = run(instance, {"words": words, "scale": np.array([3], np.int64)})
    assert list(out["OUTPUT__0"]) == [b"HELLO", b"", "CAFé".encode()]  # TorchScript's upper() is ASCII-only
    np.testing.assert_array_equal(out["OUTPUT__1"][:2], [15, 0])
    with pytest.raises(TritiumError) as info:
        run(instance, {"words": np.array([b"\xff"], dtype=object), "scale": np.array([1], np.int64)})
    assert info.value.code is StatusCode.INVALID_ARG and "not valid UTF-8" in info.value.message


def test_multi_dimensional_strings_are_refused_like_triton(torch_models, tmp_path):
    with pytest.raises(ConfigError, match="only supports 1 dimensional List of String as input for 'words'"):
        load(torch_models, tmp_path, "strings", """
            max_batch_size: 2
            input [ { name: "words" data_type: TYPE_STRING dims: [ 3 ] },
                    { name: "scale" data_type: TYPE_INT64 dims: [ 1 ] } ]
            output [ { name: "OUTPUT__0" data_type: TYPE_STRING dims: [ -1 ] },
                     { name: "OUTPUT__1" data_type: TYPE_INT64 dims: [ -1 ] } ]
        """)


# ------------------------------------------------------------------------------------------------- naming
ADD_SUB = """
    max_batch_size: 8
    input [ {{ name: "{i0}" data_type: TYPE_INT32 dims: [ 4 ] }},
            {{ name: "{i1}" data_type: TYPE_INT32 dims: [ 4 ] }} ]
    output [ {{ name: "{o0}" data_type: TYPE_INT32 dims: [ 4 ] }},
             {{ name: "{o1}" data_type: TYPE_INT32 dims: [ 4 ] }} ]
"""


@pytest.mark.parametrize(
    ("names", "a_name", "sum_name"),
    [
        (("INPUT__0", "INPUT__1", "OUTPUT__0", "OUTPUT__1"), "INPUT__0", "OUTPUT__0"),
        (("INPUT__1", "INPUT__0", "OUTPUT__1", "OUTPUT__0"), "INPUT__0", "OUTPUT__0"),  # indexes, not order
        (("b", "a", "SUM", "DIFF"), "a", "SUM"),  # forward's argument names; outputs in config order
        (("first", "second", "x", "y"), "first", "x"),  # neither: config order
    ],
)
def test_naming_rules(torch_models, tmp_path, names, a_name, sum_name):
    i0, i1, o0, o1 = names
    instance = load(torch_models, tmp_path, "add_sub", ADD_SUB.format(i0=i0, i1=i1, o0=o0, o1=o1))
    a = np.arange(8, dtype=np.int32).reshape(2, 4)
    b = np.full((2, 4), 10, np.int32)
    b_name = i1 if a_name == i0 else i0
    out = run(instance, {a_name: a, b_name: b}, 2)
    np.testing.assert_array_equal(out[sum_name], a + b)
    diff_name = o1 if sum_name == o0 else o0
    np.testing.assert_array_equal(out[diff_name], a - b)


def test_dict_input(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "dict_add", """
        input [ { name: "b" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "a" data_type: TYPE_FP32 dims: [ 3 ] } ]
        output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 3 ] } ]
    """)
    out = run(instance, {"a": np.ones(3, np.float32), "b": np.full(3, 2, np.float32)})
    np.testing.assert_array_equal(out["OUT"], [5, 5, 5])


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("add_sub", 'input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 4 ] } ] '
                    'output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 4 ] } ]',
         "configuration expects 1 inputs, model provides 2"),
        ("takes_int", 'input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 4 ] },'
                      '{ name: "INPUT__1" data_type: TYPE_INT32 dims: [ 1 ] } ] '
                      'output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 4 ] } ]',
         "An input of type 'int' was detected in the model"),
        ("add_sub", 'input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 4 ] },'
                    '{ name: "INPUT__7" data_type: TYPE_INT32 dims: [ 4 ] } ] '
                    'output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 4 ] } ]',
         "names index 7"),
    ],
)
def test_load_errors(torch_models, tmp_path, kind, config, message):
    with pytest.raises(ConfigError, match=message):
        load(torch_models, tmp_path, kind, config)


def test_missing_and_broken_files(torch_models, tmp_path):
    backend = TorchBackend({})
    source, config = torch_models.write_model(tmp_path, "m", "identity", """
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
    """)
    source.model_file.write_bytes(b"garbage")
    with pytest.raises(TritiumError) as info:
        backend.create_instance(source, config, torch_models.cpu_placement())
    assert info.value.code is StatusCode.INTERNAL and "failed to load model 'm'" in info.value.message
    source.model_file.unlink()
    with pytest.raises(TritiumError) as info:
        backend.create_instance(source, config, torch_models.cpu_placement())
    assert info.value.code is StatusCode.UNAVAILABLE and "unable to find" in info.value.message


# ------------------------------------------------------------------------------------------------- errors
ONE_FP32 = """
    max_batch_size: 4
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""


def test_forward_that_raises_is_a_pytorch_execute_failure(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "failing", ONE_FP32)
    np.testing.assert_array_equal(run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)["OUTPUT__0"], [[2, 2]])
    with pytest.raises(TritiumError) as info:
        run(instance, {"INPUT__0": -np.ones((1, 2), np.float32)}, 1)
    assert info.value.code is StatusCode.INTERNAL
    assert info.value.message.startswith("PyTorch execute failure: ")
    assert "negative input" in info.value.message
    # the instance keeps serving after a failure
    np.testing.assert_array_equal(run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)["OUTPUT__0"], [[2, 2]])


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("returns_dict", StatusCode.INTERNAL, "It should not be a List / Dictionary of Tensors or a Scalar"),
        ("returns_int64", StatusCode.INVALID_ARG,
         "configuration expects datatype TYPE_FP32 for output 'OUTPUT__0', model provides TYPE_INT64"),
        ("returns_scalar", StatusCode.INVALID_ARG, "output 'OUTPUT__0' is a scalar which is not supported."),
    ],
)
def test_bad_results(torch_models, tmp_path, kind, code, message):
    instance = load(torch_models, tmp_path, kind, ONE_FP32)
    with pytest.raises(TritiumError) as info:
        run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)
    assert info.value.code is code
    assert message in info.value.message


def test_output_index_past_the_results(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "identity", """
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
        output [ { name: "OUTPUT__3" data_type: TYPE_FP32 dims: [ 2 ] } ]
    """)
    with pytest.raises(TritiumError, match="output tensor 'OUTPUT__3' is not found"):
        run(instance, {"INPUT__0": np.ones(2, np.float32)})


def test_requested_outputs(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "add_sub", ADD_SUB.format(i0="a", i1="b", o0="OUTPUT__0", o1="OUTPUT__1"))
    ones = np.ones((1, 4), np.int32)
    assert set(run(instance, {"a": ones, "b": ones}, 1, outputs=("OUTPUT__1",))) == {"OUTPUT__1"}
    with pytest.raises(TritiumError) as info:
        run(instance, {"a": ones, "b": ones}, 1, outputs=("NOPE",))
    assert info.value.code is StatusCode.INVALID_ARG and "unexpected inference output 'NOPE'" in info.value.message


def test_a_model_writing_into_its_input_never_touches_the_request(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "in_place", ONE_FP32)
    received = np.frombuffer(np.ones(2, np.float32).tobytes(), np.float32).reshape(1, 2)  # read-only view
    out = run(instance, {"INPUT__0": received}, 1)["OUTPUT__0"]
    np.testing.assert_array_equal(out, [[2, 2]])
    np.testing.assert_array_equal(received, [[1, 1]])


# ------------------------------------------------------------------------------------- parameters, devices
def test_parameters_reach_the_executing_thread(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "identity", ONE_FP32 + """
        parameters { key: "DISABLE_OPTIMIZED_EXECUTION" value { string_value: "true" } }
        parameters { key: "INFERENCE_MODE" value { string_value: "false" } }
    """)
    seen = {}

    def work():
        run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)
        seen["optimize"] = torch._C._get_graph_executor_optimize()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["optimize"] is False


def test_process_wide_jit_flags_are_set_before_each_execution(torch_models, tmp_path):
    before = torch._C._jit_texpr_fuser_enabled()
    try:
        instance = load(torch_models, tmp_path, "identity", ONE_FP32 + f"""
            parameters {{ key: "ENABLE_TENSOR_FUSER" value {{ string_value: "{str(not before).lower()}" }} }}
        """)
        run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)
        assert torch._C._jit_texpr_fuser_enabled() is (not before)
    finally:
        torch._C._jit_set_texpr_fuser_enabled(before)


def test_weight_sharing_shares_one_module_per_device(torch_models, tmp_path):
    backend = TorchBackend({})
    text = """
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
    """
    shared = text + 'parameters { key: "ENABLE_WEIGHT_SHARING" value { string_value: "true" } }'
    source, config = torch_models.write_model(tmp_path, "shared", "scaled", shared)
    one = backend.create_instance(source, config, torch_models.cpu_placement(0))
    two = backend.create_instance(source, config, torch_models.cpu_placement(1))
    assert one.module is two.module and len(backend.shared_modules) == 1
    np.testing.assert_array_equal(run(two, {"INPUT__0": np.ones(4, np.float32)})["OUTPUT__0"], [3, 3, 3, 3])
    one.close()
    assert len(backend.shared_modules) == 1
    two.close()
    two.close()
    assert len(backend.shared_modules) == 0
    source, config = torch_models.write_model(tmp_path, "separate", "scaled", text)
    three = backend.create_instance(source, config, torch_models.cpu_placement(0))
    four = backend.create_instance(source, config, torch_models.cpu_placement(1))
    assert three.module is not four.module


def test_thread_counts_are_set_once_by_the_first_model(torch_models, tmp_path):
    before = torch.get_num_threads()
    backend = TorchBackend({})
    try:
        load(torch_models, tmp_path, "identity", ONE_FP32 + """
            parameters { key: "INTRA_OP_THREAD_COUNT" value { string_value: "1" } }
        """, backend=backend, name="first")
        assert torch.get_num_threads() == 1
        load(torch_models, tmp_path, "identity", ONE_FP32 + """
            parameters { key: "INTRA_OP_THREAD_COUNT" value { string_value: "3" } }
        """, backend=backend, name="second")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_supports_gpu_is_whether_torch_sees_cuda():
    assert TorchBackend({}).supports_gpu() is torch.cuda.is_available()


def test_gpu_placement_without_cuda_is_unavailable(torch_models, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: see test_torch_gpu.py")
    gpu = InstancePlacement(name="m_0", kind="GPU", device_id=0, group_name="m", index=0)
    with pytest.raises(TritiumError) as info:
        load(torch_models, tmp_path, "identity", ONE_FP32, placement=gpu)
    assert info.value.code is StatusCode.UNAVAILABLE and "has no CUDA device" in info.value.message


def test_closed_instance_refuses(torch_models, tmp_path):
    instance = load(torch_models, tmp_path, "identity", ONE_FP32)
    instance.close()
    with pytest.raises(TritiumError) as info:
        run(instance, {"INPUT__0": np.ones((1, 2), np.float32)}, 1)
    assert info.value.code is StatusCode.UNAVAILABLE


# ----------------------------------------------------------------------------------- hypothesis: batching
MLP_CONFIG = """
    max_batch_size: 16
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] },
            { name: "INPUT__1" data_type: TYPE_FP32 dims: [ -1 ] } ]
    output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] },
             { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""


@pytest.fixture
def add_sub_fp32(torch_models, tmp_path):
    return load(torch_models, tmp_path, "add_sub", MLP_CONFIG)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=5).filter(lambda sizes: sum(sizes) <= 16),
    st.integers(0, 7),
    st.integers(0, 2**32 - 1),
)
def test_a_batch_equals_its_requests_run_alone(add_sub_fp32, sizes, width, seed):
    """However requests of any shape are split, one batched execution gives each request exactly what
    executing it alone gives (rows never mix)."""
    rng = np.random.default_rng(seed)
    parts = [(rng.standard_normal((n, width)).astype(np.float32), rng.standard_normal((n, width)).astype(np.float32))
             for n in sizes]
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    batched = run(add_sub_fp32, {"INPUT__0": a, "INPUT__1": b}, len(a))
    offset = 0
    for x, y in parts:
        alone = run(add_sub_fp32, {"INPUT__0": x, "INPUT__1": y}, len(x))
        for name in ("OUTPUT__0", "OUTPUT__1"):
            assert batched[name].shape == (len(a), width)
            np.testing.assert_array_equal(batched[name][offset : offset + len(x)], alone[name])
        offset += len(x)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TENSOR_TYPES), st.lists(st.integers(0, 5), min_size=1, max_size=3), st.integers(0, 1000))
def test_identity_keeps_any_shape_and_value(torch_models, tmp_path_factory, wire, shape, seed):
    path = tmp_path_factory.mktemp("identity")
    instance = load(torch_models, path, "identity", f"""
        input [ {{ name: "INPUT__0" data_type: {config_type(wire)} dims: [ {", ".join("-1" for _ in shape)} ] }} ]
        output [ {{ name: "OUTPUT__0" data_type: {config_type(wire)} dims: [ {", ".join("-1" for _ in shape)} ] }} ]
    """)
    x = sample(wire, tuple(shape), seed)
    out = run(instance, {"INPUT__0": x})["OUTPUT__0"]
    assert out.shape == x.shape and out.dtype == x.dtype
    if x.dtype == ml_dtypes.bfloat16:
        x, out = x.view(np.uint16), out.view(np.uint16)
    np.testing.assert_array_equal(out, x)
