"""Session settings and execution providers from the model configuration."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from tritium_backend_onnx._providers import select_providers
from tritium_backend_onnx._session import SessionSettings

from tritium import Batch, ConfigError, InstancePlacement, StatusCode, TritiumError, install_command

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


# ----------------------------------------------------------------------------------------- settings
def test_defaults(config_from):
    settings = SessionSettings.from_config(config_from())
    assert settings.graph_optimization_level == "ORT_ENABLE_ALL"
    assert settings.execution_mode == "ORT_SEQUENTIAL"
    assert settings.intra_op_num_threads == 0 and settings.inter_op_num_threads == 0
    assert settings.enable_cpu_mem_arena is None and settings.enable_mem_pattern is None
    assert settings.session_config == {} and settings.run_options() is None


@pytest.mark.parametrize(
    "level,expected",
    [(-1, "ORT_ENABLE_BASIC"), (1, "ORT_ENABLE_EXTENDED"), (2, "ORT_DISABLE_ALL"), (0, "ORT_ENABLE_ALL"),
     (3, "ORT_ENABLE_ALL")],
)
def test_graph_optimization_level_follows_triton(config_from, level, expected):
    settings = SessionSettings.from_config(config_from(f"optimization {{ graph {{ level: {level} }} }}"))
    assert settings.graph_optimization_level == expected
    options = settings.session_options()
    assert options.graph_optimization_level == getattr(ort.GraphOptimizationLevel, expected)


def _params(**values: str) -> str:
    return " ".join(
        f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}' for key, value in values.items()
    )


def test_parameters_reach_the_session_options(config_from):
    text = _params(
        intra_op_thread_count="3",
        inter_op_thread_count="2",
        execution_mode="1",
        enable_mem_arena="0",
        enable_mem_pattern="off",
    )
    text += ' parameters { key: "session.use_device_allocator_for_initializers" value { string_value: "1" } }'
    text += ' parameters { key: "session.intra_op.allow_spinning" value { string_value: "0" } }'
    settings = SessionSettings.from_config(config_from(text))
    options = settings.session_options()
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 2
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.enable_cpu_mem_arena is False
    assert options.enable_mem_pattern is False
    assert options.get_session_config_entry("session.use_device_allocator_for_initializers") == "1"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_memory_arena_shrinkage_is_a_run_option(config_from):
    settings = SessionSettings.from_config(
        config_from(_params(**{"memory.enable_memory_arena_shrinkage": "cpu:0"}))
    )
    assert settings.run_config == {"memory.enable_memory_arena_shrinkage": "cpu:0"}
    assert settings.run_options() is not None


@pytest.mark.parametrize(
    "params,message",
    [
        ({"execution_mode": "2"}, "Expected values for execution_mode are 0 or 1 but got 2"),
        ({"intra_op_thread_count": "lots"}, "failed to convert 'lots' to integer for parameter"),
        ({"enable_mem_arena": "maybe"}, "failed to convert 'maybe' to boolean"),
    ],
)
def test_bad_parameters_are_config_errors(config_from, params, message):
    with pytest.raises(ConfigError, match=message):
        SessionSettings.from_config(config_from(_params(**params)))


def test_settings_apply_to_a_real_session(onnx_graphs, model_writer, config_from, load):
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT))
    text = _params(intra_op_thread_count="1", enable_mem_arena="1", **{
        "memory.enable_memory_arena_shrinkage": "cpu:0"
    })
    _, instance = load(source, config_from("optimization { graph { level: 2 } } " + text))
    options = instance.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = np.ones((2, 3), np.float32)
    out = instance.execute(Batch({"INPUT0": x}, frozenset({"OUTPUT0"}), (), 2))
    np.testing.assert_array_equal(out["OUTPUT0"], x)


# ---------------------------------------------------------------------------------------- providers
def test_cpu_instance_uses_the_cpu_provider(config_from):
    assert select_providers(config_from(), kind="CPU", device_id=0, available=CPU_ONLY) == [
        ("CPUExecutionProvider", {})
    ]


def test_cpu_instance_ignores_gpu_accelerators(config_from):
    text = 'optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }'
    assert select_providers(config_from(text), kind="CPU", device_id=0, available=CPU_ONLY) == [
        ("CPUExecutionProvider", {})
    ]


def test_gpu_instance_uses_cuda_on_its_device_then_cpu(config_from):
    providers = select_providers(config_from(), kind="GPU", device_id=1, available=WITH_CUDA)
    assert providers == [("CUDAExecutionProvider", {"device_id": "1"}), ("CPUExecutionProvider", {})]


def test_gpu_instance_without_cuda_provider_is_unavailable(config_from):
    with pytest.raises(TritiumError) as info:
        select_providers(config_from(), kind="GPU", device_id=0, available=CPU_ONLY)
    assert info.value.code is StatusCode.UNAVAILABLE
    assert install_command("tritium-backend-onnx", "gpu") in info.value.message


def test_tensorrt_accelerator_maps_tritons_parameter_names(config_from):
    text = """
    optimization { execution_accelerators { gpu_execution_accelerator [ {
        name: "tensorrt"
        parameters { key: "precision_mode" value: "FP16" }
        parameters { key: "max_workspace_size_bytes" value: "1073741824" }
        parameters { key: "trt_engine_cache_enable" value: "1" }
        parameters { key: "trt_engine_cache_path" value: "/tmp/cache" }
    } ] } }
    """
    providers = select_providers(config_from(text), kind="GPU", device_id=0, available=WITH_CUDA)
    assert [name for name, _ in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
    ]
    assert providers[0][1] == {
        "trt_fp16_enable": "True",
        "trt_max_workspace_size": "1073741824",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/tmp/cache",
        "device_id": "0",
    }


def test_unknown_tensorrt_parameter_is_rejected(config_from):
    text = """optimization { execution_accelerators { gpu_execution_accelerator [ {
        name: "tensorrt" parameters { key: "warp_speed" value: "9" } } ] } }"""
    with pytest.raises(ConfigError, match="unknown parameter 'warp_speed' is provided for TensorRT"):
        select_providers(config_from(text), kind="GPU", device_id=0, available=WITH_CUDA)


def test_cuda_accelerator_and_legacy_parameters_become_cuda_options(config_from):
    text = """
    optimization { execution_accelerators { gpu_execution_accelerator [ {
        name: "cuda" parameters { key: "cudnn_conv_use_max_workspace" value: "0" } } ] } }
    parameters { key: "cudnn_conv_algo_search" value { string_value: "1" } }
    parameters { key: "arena_extend_strategy" value { string_value: "1" } }
    parameters { key: "gpu_mem_limit" value { string_value: "4294967200" } }
    """
    providers = select_providers(config_from(text), kind="GPU", device_id=2, available=WITH_CUDA)
    assert providers[0] == (
        "CUDAExecutionProvider",
        {
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
            "gpu_mem_limit": "4294967200",
            "cudnn_conv_use_max_workspace": "0",
            "device_id": "2",
        },
    )


@pytest.mark.parametrize("field", ["gpu_execution_accelerator", "cpu_execution_accelerator"])
def test_unknown_accelerator_is_rejected(config_from, field):
    text = f'optimization {{ execution_accelerators {{ {field} [ {{ name: "warp" }} ] }} }}'
    with pytest.raises(ConfigError, match="unknown Execution Accelerator 'warp' is requested"):
        select_providers(config_from(text), kind="GPU", device_id=0, available=WITH_CUDA)


def test_openvino_needs_its_provider(config_from):
    text = 'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }'
    with pytest.raises(ConfigError, match="unknown Execution Accelerator 'openvino' is requested: this onnxruntime"):
        select_providers(config_from(text), kind="CPU", device_id=0, available=CPU_ONLY)
    providers = select_providers(
        config_from(text), kind="CPU", device_id=0, available=["OpenVINOExecutionProvider", *CPU_ONLY]
    )
    assert providers == [("OpenVINOExecutionProvider", {"device_type": "CPU"}), ("CPUExecutionProvider", {})]


def test_gpu_placement_fails_cleanly_with_the_cpu_build(onnx_graphs, model_writer, backend, config_from):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT))
    config = backend.auto_complete_config(source, config_from())
    with pytest.raises(TritiumError, match="CUDA execution provider"):
        backend.create_instance(source, config, InstancePlacement("m_0", "GPU", 0, "g", 0))


def _has_gpu() -> bool:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu(), reason="needs onnxruntime-gpu and a CUDA GPU")
def test_gpu_instance_runs_on_cuda(onnx_graphs, model_writer, backend, config_from):
    source = model_writer("m", onnx_graphs.add_sub(onnx_graphs.TensorProto.FLOAT))
    config = backend.auto_complete_config(source, config_from())
    instance = backend.create_instance(source, config, InstancePlacement("m_0", "GPU", 0, "g", 0))
    try:
        assert instance.session.get_providers()[0] == "CUDAExecutionProvider"
        a = np.arange(32, dtype=np.float32).reshape(2, 16)
        b = np.ones((2, 16), np.float32)
        out = instance.execute(Batch({"INPUT0": a, "INPUT1": b}, frozenset({"OUTPUT0", "OUTPUT1"}), (), 2))
        np.testing.assert_array_equal(out["OUTPUT0"], a + b)
        np.testing.assert_array_equal(out["OUTPUT1"], a - b)
    finally:
        instance.close()
