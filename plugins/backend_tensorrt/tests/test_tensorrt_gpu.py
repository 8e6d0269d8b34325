"""Real TensorRT on a real GPU: build a tiny engine with TensorRT's builder from an ONNX model generated
here, then load and run it through the backend exactly as the server does.

Skipped unless ``tensorrt`` (10+), ``cuda-python``, ``onnx`` and an NVIDIA GPU are all present: the
development machine has none of them, so these tests have never run (see docs/backend-tensorrt.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritium import InstancePlacement, ModelSource, StatusCode, TritiumError
from tritium.config import normalize_model_config, parse_model_config

pytestmark = pytest.mark.gpu


def _why_not() -> str | None:
    from tritium_backend_tensorrt._availability import availability

    if importlib.util.find_spec("onnx") is None:
        return "needs onnx to build the test engine"
    return availability()


_REASON = _why_not()
if _REASON is not None:
    pytest.skip(f"real TensorRT tests: {_REASON}", allow_module_level=True)

WIDTH = 16


def _onnx_add_sub() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    shape = ["batch", WIDTH]
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        "add_sub",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("INPUT0", "INPUT1")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("OUTPUT0", "OUTPUT1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _build_engine(profiles: list[tuple[int, int, int]]) -> bytes:
    """An engine for the add/sub model with one optimization profile per (min, opt, max) batch size."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(_onnx_add_sub()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    for low, opt, high in profiles:
        profile = builder.create_optimization_profile()
        for name in ("INPUT0", "INPUT1"):
            profile.set_shape(name, (low, WIDTH), (opt, WIDTH), (high, WIDTH))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "TensorRT could not build the test engine"
    return bytes(serialized)


@pytest.fixture(scope="module")
def engine_bytes() -> bytes:
    return _build_engine([(1, 4, 8), (8, 32, 64)])


def _model(tmp_path: Path, engine: bytes, text: str = "") -> tuple[Any, ModelSource, Any]:
    from tritium_backend_tensorrt import TensorRTBackend

    version = tmp_path / "add_sub" / "1"
    version.mkdir(parents=True)
    (version / "model.plan").write_bytes(engine)
    source = ModelSource("add_sub", 1, version.parent, version, version / "model.plan")
    backend = TensorRTBackend({})
    config = parse_model_config(text)
    config.name, config.backend, config.platform = "add_sub", "tensorrt", "tensorrt_plan"
    completed = backend.auto_complete_config(source, config)
    return backend, source, normalize_model_config(completed, model_name="add_sub", source="add_sub", gpu_count=1)


def _run(instance: Any, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    from tritium import Batch

    return dict(instance.execute(Batch({"INPUT0": a, "INPUT1": b}, frozenset(), (), a.shape[0])))


def _check(instance: Any, batch: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, WIDTH)).astype(np.float32)
    b = rng.standard_normal((batch, WIDTH)).astype(np.float32)
    out = _run(instance, a, b)
    np.testing.assert_allclose(out["OUTPUT0"], a + b, rtol=1e-6)
    np.testing.assert_allclose(out["OUTPUT1"], a - b, rtol=1e-6)


def test_auto_complete_from_a_real_engine(tmp_path, engine_bytes):
    _, _, config = _model(tmp_path, engine_bytes, 'instance_group [ { kind: KIND_GPU profile: ["0", "1"] } ]')
    assert config.max_batch_size == 64
    assert [list(t.dims) for t in config.input] == [[WIDTH], [WIDTH]]
    assert [t.name for t in config.output] == ["OUTPUT0", "OUTPUT1"]


def test_execute_with_profile_selection(tmp_path, engine_bytes):
    backend, source, config = _model(tmp_path, engine_bytes, 'instance_group [ { kind: KIND_GPU profile: ["0", "1"] } ]')  # noqa: E501
    group = config.instance_group[0].name
    instance = backend.create_instance(source, config, InstancePlacement(f"{group}_0", "GPU", 0, group, 0))
    try:
        assert instance.profiles == (0, 1)
        for batch in (1, 3, 8, 9, 40, 64):
            _check(instance, batch, seed=batch)
    finally:
        instance.close()


def test_shapes_outside_the_group_s_profiles(tmp_path, engine_bytes):
    backend, source, config = _model(tmp_path, engine_bytes, "max_batch_size: 8 instance_group [ { kind: KIND_GPU } ]")
    group = config.instance_group[0].name
    instance = backend.create_instance(source, config, InstancePlacement(f"{group}_0", "GPU", 0, group, 0))
    try:
        _check(instance, 8)
        a = np.zeros((2, WIDTH + 1), np.float32)
        with pytest.raises(TritiumError) as info:
            _run(instance, a, a)
        assert info.value.code is StatusCode.INVALID_ARG
    finally:
        instance.close()


def test_cuda_graphs(tmp_path, engine_bytes):
    text = "max_batch_size: 8 optimization { cuda { graphs: true } } instance_group [ { kind: KIND_GPU } ]"
    backend, source, config = _model(tmp_path, engine_bytes, text)
    group = config.instance_group[0].name
    instance = backend.create_instance(source, config, InstancePlacement(f"{group}_0", "GPU", 0, group, 0))
    try:
        assert instance.graph_keys, "no CUDA graph was captured"
        for batch in (1, 5, 8):
            _check(instance, batch, seed=batch)
    finally:
        instance.close()


def test_a_garbage_plan_is_a_clean_load_error(tmp_path, engine_bytes):
    backend, source, config = _model(tmp_path, engine_bytes)
    source.model_file.write_bytes(b"\x00 not an engine")
    group = config.instance_group[0].name
    with pytest.raises(TritiumError, match="unable to create TensorRT engine"):
        backend.create_instance(source, config, InstancePlacement(f"{group}_0", "GPU", 0, group, 0))
