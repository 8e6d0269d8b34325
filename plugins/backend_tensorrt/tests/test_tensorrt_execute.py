"""Loading and executing tensorrt_plan models against the TensorRT test double: shape binding, profiles per
instance group, batching, CUDA graphs, device memory, and every error path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritium import Batch, ConfigError, DataType, InferenceRequest, StatusCode, Tensor, TritiumError
from tritium.testing.builders import batch_of, build_request


def load(kit, tmp_path, spec, text="", *, name="m", options=None, group=0, device_id=0):
    backend, _trt, device = kit.make_backend(options)
    source = kit.write_plan(tmp_path, name, spec)
    config = kit.load_config(backend, source, kit.parse_config(text))
    instance = backend.create_instance(source, config, kit.gpu_placement(config, group=group, device_id=device_id))
    return instance, config, device


def raw_batch(arrays, requested=(), batch_size=0):
    requests = [InferenceRequest(model_name="m", inputs={
        n: Tensor(n, DataType.from_numpy(a.dtype) if hasattr(DataType, "from_numpy") else DataType.FP32, a)
        for n, a in arrays.items()})]
    return Batch(inputs=arrays, requested_outputs=frozenset(requested), requests=requests, batch_size=batch_size)


def test_batched_requests_execute_as_one_batch(kit, tmp_path):
    instance, config, device = load(kit, tmp_path, kit.add_sub_spec(dtype="INT32", width=16))
    requests = [build_request(config, batch_size=b, rng=np.random.default_rng(b)) for b in (1, 3, 2)]
    outputs = instance.execute(batch_of(config, requests))
    a = np.concatenate([r.inputs["INPUT0"].data for r in requests])
    b = np.concatenate([r.inputs["INPUT1"].data for r in requests])
    assert outputs["OUTPUT0"].dtype == np.int32 and outputs["OUTPUT0"].shape == (6, 16)
    assert np.array_equal(outputs["OUTPUT0"], a + b)
    assert np.array_equal(outputs["OUTPUT1"], a - b)
    instance.close()
    assert device.live() == (0, 0, 0), "buffers, stream or graphs leaked"


def test_only_requested_outputs_are_copied_back(kit, tmp_path):
    instance, config, _ = load(kit, tmp_path, kit.add_sub_spec())
    request = build_request(config, batch_size=2)
    batch = batch_of(config, [request])
    outputs = instance.execute(Batch(batch.inputs, frozenset({"OUTPUT1"}), batch.requests, batch.batch_size))
    assert set(outputs) == {"OUTPUT1"}


@pytest.mark.parametrize("dtype", ["FLOAT", "HALF", "BF16", "INT8", "UINT8", "INT32", "INT64", "BOOL"])
def test_identity_round_trip_per_datatype(kit, tmp_path, dtype):
    instance, config, _ = load(kit, tmp_path, kit.identity_spec(dtype), name=f"id_{dtype.lower()}")
    request = build_request(config, batch_size=2, rng=np.random.default_rng(3))
    outputs = instance.execute(batch_of(config, [request]))
    sent = request.inputs["INPUT0"].data
    assert outputs["OUTPUT0"].dtype == sent.dtype
    assert np.array_equal(outputs["OUTPUT0"].astype(np.float64), sent.astype(np.float64))
    instance.close()


def test_buffers_grow_with_the_shapes_and_are_reused(kit, tmp_path):
    instance, _config, device = load(kit, tmp_path, kit.identity_spec())
    for shape in [(1, 1), (8, 16), (2, 3), (8, 16)]:
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        out = instance.execute(raw_batch({"INPUT0": x}, batch_size=shape[0]))
        assert np.array_equal(out["OUTPUT0"], x)
    assert device.live()[0] == 2, "one input and one output buffer, grown in place"
    instance.close()


def test_shape_outside_every_profile_is_invalid_arg(kit, tmp_path):
    instance, _, _ = load(kit, tmp_path, kit.identity_spec())
    with pytest.raises(TritiumError) as info:
        instance.execute(raw_batch({"INPUT0": np.zeros((2, 17), np.float32)}, batch_size=2))
    assert info.value.code is StatusCode.INVALID_ARG
    assert "failed to find any Optimization Profile" in str(info.value)
    assert "INPUT0 [2,17]" in str(info.value) and "[1,1]..[8,16]" in str(info.value)


TWO_PROFILES = [
    {"INPUT0": [[1, 1], [2, 4], [4, 8]]},
    {"INPUT0": [[1, 1], [16, 32], [32, 64]]},
]


def test_instance_groups_get_their_profiles_and_contexts(kit, tmp_path):
    text = 'instance_group [ { name: "small" kind: KIND_GPU gpus: [0] }, { name: "both" kind: KIND_GPU gpus: [1] profile: ["1", "0"] } ]'  # noqa: E501
    spec = kit.identity_spec(profiles=TWO_PROFILES)
    small, config, _ = load(kit, tmp_path, spec, text, group=0)
    assert small.profiles == (0,)
    both, _, _ = load(kit, tmp_path, spec, text, name="m2", group=1, device_id=1)
    assert both.profiles == (0, 1)
    assert config.max_batch_size == 32, "auto-complete takes the largest max batch over the listed profiles"
    x = np.ones((20, 40), np.float32)
    assert np.array_equal(both.execute(raw_batch({"INPUT0": x}, batch_size=20))["OUTPUT0"], x)
    with pytest.raises(TritiumError, match="failed to find any Optimization Profile"):
        small.execute(raw_batch({"INPUT0": x}, batch_size=20))
    small.close()
    both.close()


def test_config_dims_outside_a_profile_fail_the_load(kit, tmp_path):
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.identity_spec(profiles=TWO_PROFILES))
    text = 'instance_group [ { name: "a" kind: KIND_GPU gpus: [0] }, { name: "b" kind: KIND_GPU gpus: [0] profile: "1" } ] input [ { name: "INPUT0" dims: [ 40 ] } ]'  # noqa: E501
    config = kit.load_config(backend, source, kit.parse_config(text))
    with pytest.raises(ConfigError, match="dimension 1 to be between 1 and 8 but received 40"):
        backend.create_instance(source, config, kit.gpu_placement(config, group=0))
    backend.create_instance(source, config, kit.gpu_placement(config, group=1)).close()


def test_the_context_for_a_nonzero_profile_is_switched_to_it(kit, tmp_path):
    text = 'instance_group [ { kind: KIND_GPU profile: ["1"] } ]'
    instance, _, _ = load(kit, tmp_path, kit.identity_spec(profiles=TWO_PROFILES), text)
    (context,) = instance._contexts
    assert context.context.profile == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(0, 32), cols=st.integers(0, 70))
def test_shape_binding_property(kit, tmp_path_factory, rows, cols):
    """Shapes inside a profile execute with the profile's context and give identity results; shapes outside
    all profiles are INVALID_ARG; the engine never sees a shape its context's profile refuses."""
    tmp_path = tmp_path_factory.mktemp("prop")
    text = 'instance_group [ { kind: KIND_GPU profile: ["0", "1"] } ]'
    instance, _, device = load(kit, tmp_path, kit.identity_spec(profiles=TWO_PROFILES), text)
    x = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    fits = [i for i, p in enumerate(TWO_PROFILES)
            if all(lo <= d <= hi for lo, d, hi in zip(p["INPUT0"][0], (rows, cols), p["INPUT0"][2], strict=True))]
    try:
        if not fits:
            with pytest.raises(TritiumError) as info:
                instance.execute(raw_batch({"INPUT0": x}, batch_size=rows))
            assert info.value.code is StatusCode.INVALID_ARG
            return
        out = instance.execute(raw_batch({"INPUT0": x}, batch_size=rows))
        assert np.array_equal(out["OUTPUT0"], x)
        used = next(c for c in instance._contexts if c.context.shapes.get("INPUT0") == (rows, cols))
        assert used.profile in fits
    finally:
        instance.close()
    assert device.live() == (0, 0, 0)


def test_cpu_placement_is_refused_as_in_triton(kit, tmp_path):
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config())
    from tritium import InstancePlacement

    with pytest.raises(TritiumError, match="TensorRT backend supports only GPU device") as info:
        backend.create_instance(source, config, InstancePlacement("m_0", "CPU", 0, "m", 0))
    assert info.value.code is StatusCode.INVALID_ARG


def test_a_broken_plan_names_the_file_and_tensorrt_s_message(kit, tmp_path):
    backend, _, _ = kit.make_backend()
    good = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, good, kit.parse_config())
    broken = kit.write_plan(tmp_path, "m", b"\x00garbage")
    with pytest.raises(TritiumError) as info:
        backend.create_instance(broken, config, kit.gpu_placement(config))
    assert info.value.code is StatusCode.INTERNAL
    assert "model.plan" in str(info.value) and "Serialization" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["tensors"][0].update(dtype="FP8"), "has TensorRT type FP8, which has no Triton datatype"),
        (lambda s: s["tensors"][0].update(shape_tensor=True), "is a shape tensor"),
        (lambda s: s["tensors"][2].update(format="CHW32"), "non-linear I/O format"),
    ],
)
def test_unsupported_engines_fail_to_load_clearly(kit, tmp_path, change, message):
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config())
    spec = kit.add_sub_spec()
    change(spec)
    kit.write_plan(tmp_path, "m", spec)
    with pytest.raises(ConfigError, match=message):
        backend.create_instance(source, config, kit.gpu_placement(config))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('max_batch_size: 8 input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [4] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [4] } ]',  # noqa: E501
         "data-type FP32 doesn't match configuration data-type INT32"),
        ('max_batch_size: 8 input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [5] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [4] } ]',  # noqa: E501
         r"shape expected by framework \[-1,4\] doesn't match model configuration shape \[5\]"),
        ('max_batch_size: 8 input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [4] } ]',
         "engine input 'INPUT1' is missing from the model configuration"),
        ('max_batch_size: 8 output [ { name: "OUT" data_type: TYPE_FP32 dims: [4] } ]',
         "unexpected inference output 'OUT'"),
    ],
)
def test_config_contradicting_the_engine_without_auto_complete(kit, tmp_path, text, message):
    from tritium.config import normalize_model_config

    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.parse_config(text + ' name: "m" backend: "tensorrt"')
    if not len(config.output):
        config.output.add(name="OUTPUT0", data_type=DataType.FP32.config_enum, dims=[4])
    if not len(config.input):
        for name in ("INPUT0", "INPUT1"):
            config.input.add(name=name, data_type=DataType.FP32.config_enum, dims=[4])
    config = normalize_model_config(config, model_name="m", source="m", gpu_count=1)
    with pytest.raises(ConfigError, match=message):
        backend.create_instance(source, config, kit.gpu_placement(config))


def test_missing_input_and_data_dependent_output(kit, tmp_path):
    spec = kit.identity_spec()
    spec["tensors"].append({"name": "NZ", "mode": "OUTPUT", "dtype": "INT64", "shape": [2, -1]})
    spec["compute"]["NZ"] = ["nonzero", "INPUT0"]
    instance, _, _ = load(kit, tmp_path, spec, 'max_batch_size: 0 input [ { name: "INPUT0" dims: [-1, -1] } ]')
    with pytest.raises(TritiumError, match="expected input 'INPUT0'") as info:
        instance.execute(Batch({}, frozenset(), [], 0))
    assert info.value.code is StatusCode.INVALID_ARG
    with pytest.raises(TritiumError, match="data-dependent shape") as info:
        instance.execute(raw_batch({"INPUT0": np.ones((2, 2), np.float32)}))
    assert info.value.code is StatusCode.UNSUPPORTED


def test_a_closed_instance_refuses_and_frees_everything(kit, tmp_path):
    instance, config, device = load(kit, tmp_path, kit.add_sub_spec())
    instance.execute(batch_of(config, [build_request(config, batch_size=1)]))
    instance.close()
    assert device.live() == (0, 0, 0)
    with pytest.raises(TritiumError, match="closed"):
        instance.execute(batch_of(config, [build_request(config, batch_size=1)]))


def test_batch_above_max_batch_size_is_internal(kit, tmp_path):
    instance, _config, _ = load(kit, tmp_path, kit.add_sub_spec(), "max_batch_size: 4")
    x = np.ones((5, 4), np.float32)
    with pytest.raises(TritiumError, match="batch size 5 for 'm_0', max allowed is 4"):
        instance.execute(raw_batch({"INPUT0": x, "INPUT1": x}, batch_size=5))


# ------------------------------------------------------------------------------------------- CUDA graphs
def test_cuda_graphs_are_captured_for_triton_s_batch_sizes_and_replayed(kit, tmp_path):
    text = "max_batch_size: 8 optimization { cuda { graphs: true } } dynamic_batching { preferred_batch_size: [4] }"
    instance, config, device = load(kit, tmp_path, kit.add_sub_spec(dtype="INT32"), text)
    assert sorted(shapes["INPUT0"][0] for _, shapes in instance.graph_keys) == [1, 4, 8]
    for batch_size, graphed in ((4, True), (3, False), (8, True)):
        launches = device.launches
        request = build_request(config, batch_size=batch_size, rng=np.random.default_rng(batch_size))
        outputs = instance.execute(batch_of(config, [request]))
        a, b = request.inputs["INPUT0"].data, request.inputs["INPUT1"].data
        assert np.array_equal(outputs["OUTPUT0"], a + b) and np.array_equal(outputs["OUTPUT1"], a - b)
        assert device.launches == launches + (1 if graphed else 0)
    instance.close()
    assert device.live() == (0, 0, 0)


def test_graph_specs_give_dynamic_dims_and_unknown_dims_are_skipped(kit, tmp_path):
    text = """max_batch_size: 8 optimization { cuda { graphs: true graph_spec [
        { batch_size: 2 input { key: "INPUT0" value: { dim: [ 5 ] } } },
        { batch_size: 3 } ] } }"""
    instance, _, device = load(kit, tmp_path, kit.identity_spec(), text)
    assert instance.graph_keys == [(0, {"INPUT0": (2, 5)})]
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    assert np.array_equal(instance.execute(raw_batch({"INPUT0": x}, batch_size=2))["OUTPUT0"], x)
    assert device.launches == 1
    instance.close()


def test_non_batching_model_gets_one_graph(kit, tmp_path):
    text = 'max_batch_size: 0 input [ { name: "INPUT0" dims: [2, 4] }, { name: "INPUT1" dims: [2, 4] } ] optimization { cuda { graphs: true } }'  # noqa: E501
    instance, _, _ = load(kit, tmp_path, kit.add_sub_spec(batch=False), text)
    assert instance.graph_keys == [(0, {"INPUT0": (2, 4), "INPUT1": (2, 4)})]
    instance.close()


# ---------------------------------------------------------------------------------------------- settings
def test_allocation_strategy_reaches_the_context(kit, tmp_path):
    text = 'parameters { key: "execution_context_allocation_strategy" value: { string_value: "ON_PROFILE_CHANGE" } }'
    instance, _, _ = load(kit, tmp_path, kit.add_sub_spec(), text)
    assert instance._contexts[0].context.strategy.name == "ON_PROFILE_CHANGE"
    bad = 'name: "m" parameters { key: "execution_context_allocation_strategy" value: { string_value: "LAZY" } }'
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config(bad))
    with pytest.raises(ConfigError, match="Supported values are 'STATIC' and 'ON_PROFILE_CHANGE'"):
        backend.create_instance(source, config, kit.gpu_placement(config))


def test_backend_options(kit, tmp_path):
    backend, trt, _ = kit.make_backend({"version-compatible": "true"})
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    kit.load_config(backend, source, kit.parse_config())
    assert backend._runtime.runtime.engine_host_code_allowed is True
    assert len(trt.plugin_calls) == 1, "TensorRT's own plugins are registered once"
    with pytest.raises(ConfigError, match="execution-policy"):
        kit.make_backend({"execution-policy": "FAST"})
    with pytest.raises(ConfigError, match="coalesce-request-input"):
        kit.make_backend({"coalesce-request-input": "maybe"})
    backend, _, _ = kit.make_backend({"plugins": "/nonexistent/libplugin.so"})
    with pytest.raises(TritiumError, match=r"unable to load TensorRT plugin library '/nonexistent/libplugin\.so'"):
        kit.load_config(backend, source, kit.parse_config())


# ------------------------------------------------------------------------------------------ engine sharing
def test_instances_on_one_gpu_share_the_engine_until_the_last_closes(kit, tmp_path):
    backend, _, device = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    text = 'instance_group [ { count: 2 kind: KIND_GPU gpus: [0, 1] } ]'
    config = kit.load_config(backend, source, kit.parse_config(text))
    first = backend.create_instance(source, config, kit.gpu_placement(config, index=0, device_id=0))
    second = backend.create_instance(source, config, kit.gpu_placement(config, index=1, device_id=0))
    other_gpu = backend.create_instance(source, config, kit.gpu_placement(config, index=2, device_id=1))
    assert first._engine is second._engine
    assert other_gpu._engine is not first._engine
    assert backend.shared_engines == 2
    first.close()
    request = build_request(config, batch_size=2)
    assert set(second.execute(batch_of(config, [request]))) == {"OUTPUT0", "OUTPUT1"}
    second.close()
    assert backend.shared_engines == 1
    other_gpu.close()
    other_gpu.close()
    assert backend.shared_engines == 0
    assert device.live() == (0, 0, 0)


def test_a_changed_plan_file_gets_a_new_engine(kit, tmp_path):
    backend, _, _ = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config())
    old = backend.create_instance(source, config, kit.gpu_placement(config))
    kit.write_plan(tmp_path, "m", kit.add_sub_spec(profiles=[{"INPUT0": [[1, 4], [2, 4], [8, 4]],
                                                              "INPUT1": [[1, 4], [2, 4], [8, 4]]}]))
    new = backend.create_instance(source, config, kit.gpu_placement(config))
    assert new._engine is not old._engine
    old.close()
    new.close()
    assert backend.shared_engines == 0


def test_a_failed_load_releases_the_engine(kit, tmp_path):
    backend, _, device = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config("max_batch_size: 8"))
    config.input[0].dims[0] = 5
    with pytest.raises(ConfigError):
        backend.create_instance(source, config, kit.gpu_placement(config))
    assert backend.shared_engines == 0
    assert device.live() == (0, 0, 0)


@pytest.mark.parametrize("failure", ["context", "capture"])
def test_a_failing_instance_construction_leaks_nothing(kit, tmp_path, monkeypatch, failure):
    backend, _, device = kit.make_backend()
    source = kit.write_plan(tmp_path, "m", kit.add_sub_spec())
    config = kit.load_config(backend, source, kit.parse_config("optimization { cuda { graphs: true } }"))
    if failure == "context":
        monkeypatch.setattr(kit.fake.FakeEngine, "create_execution_context", lambda self, strategy: None)
        message = "unable to create TensorRT context"
    else:
        calls = {"n": 0}
        real = kit.fake.FakeContext.execute_async_v3

        def fail_on_capture(self, stream):
            calls["n"] += 1
            return real(self, stream) if calls["n"] < 4 else False  # fails inside the second capture

        monkeypatch.setattr(kit.fake.FakeContext, "execute_async_v3", fail_on_capture)
        message = "unable to enqueue"
    with pytest.raises(TritiumError, match=message):
        backend.create_instance(source, config, kit.gpu_placement(config))
    assert backend.shared_engines == 0
    assert device.live() == (0, 0, 0)
