"""Execution accelerators (``optimization { execution_accelerators {...} }``) as Triton's onnxruntime
backend turns them into ONNX Runtime execution providers; checked without a GPU through the pure
``select_providers`` and, for what a CPU build can show, through real onnxruntime sessions."""

from __future__ import annotations

import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_backend_onnx._providers import _TRT_PARAMETERS, select_providers

from tritium import ConfigError, InstancePlacement

CPU_ONLY = ["CPUExecutionProvider"]
CUDA_ONLY = ["CUDAExecutionProvider", "CPUExecutionProvider"]
ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]


def trt_config(config_from, params: dict[str, str], extra: str = ""):
    entries = " ".join(f'parameters {{ key: "{k}" value: "{v}" }}' for k, v in params.items())
    return config_from(
        f'optimization {{ execution_accelerators {{ gpu_execution_accelerator [ {{ name: "tensorrt" {entries} }} ] '
        f"{extra} }} }}"
    )


@pytest.mark.parametrize(
    ("mode", "flags"),
    [("FP32", {}), ("FP16", {"trt_fp16_enable": "True"}), ("BF16", {"trt_bf16_enable": "True"}),
     ("INT8", {"trt_int8_enable": "True"})],
)
def test_precision_modes(config_from, mode, flags):
    (trt, _, _) = select_providers(trt_config(config_from, {"precision_mode": mode}), kind="GPU", device_id=3,
                                   available=ALL)
    assert trt == ("TensorrtExecutionProvider", {**flags, "device_id": "3"})


def test_precision_mode_is_case_sensitive_as_in_triton(config_from):
    with pytest.raises(ConfigError, match="unsupported precision mode 'fp16' is requested"):
        select_providers(trt_config(config_from, {"precision_mode": "fp16"}), kind="GPU", device_id=0, available=ALL)


def test_onnxruntime_names_triton_does_not_accept_are_unknown(config_from):
    for key in ("trt_max_workspace_size", "trt_fp16_enable", "trt_int8_calibration_table_name"):
        with pytest.raises(ConfigError, match=f"unknown parameter '{key}' is provided for TensorRT"):
            select_providers(trt_config(config_from, {key: "1"}), kind="GPU", device_id=0, available=ALL)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("trt_engine_cache_enable", "maybe", "failed to convert 'maybe' to boolean"),
     ("trt_dla_core", "one", "failed to convert 'one' to integer"),
     ("max_workspace_size_bytes", "-5", "failed to convert '-5' to unsigned integer")],
)
def test_parameter_values_are_checked(config_from, key, value, message):
    with pytest.raises(ConfigError, match=message):
        select_providers(trt_config(config_from, {key: value}), kind="GPU", device_id=0, available=ALL)


def test_empty_text_values_are_left_out(config_from):
    (trt, _, _) = select_providers(trt_config(config_from, {"trt_engine_cache_path": ""}), kind="GPU",
                                   device_id=0, available=ALL)
    assert trt[1] == {"device_id": "0"}


def test_tensorrt_accelerator_without_the_provider_is_triton_s_error(config_from):
    with pytest.raises(ConfigError) as info:
        select_providers(trt_config(config_from, {}), kind="GPU", device_id=0, available=CUDA_ONLY)
    message = str(info.value)
    assert message.startswith("unknown Execution Accelerator 'tensorrt' is requested")
    assert "TensorrtExecutionProvider" in message and "available: CUDAExecutionProvider, CPUExecutionProvider" in message  # noqa: E501


def test_gpu_instances_also_get_the_cpu_accelerators_in_triton_s_order(config_from):
    config = trt_config(config_from, {}, 'cpu_execution_accelerator [ { name: "openvino" } ]')
    names = [name for name, _ in select_providers(config, kind="GPU", device_id=0, available=ALL)]
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
                     "CPUExecutionProvider"]


def test_unknown_gpu_accelerator_on_a_cpu_instance_is_ignored_as_in_triton(config_from):
    text = 'optimization { execution_accelerators { gpu_execution_accelerator [ { name: "warp" } ] } }'
    assert select_providers(config_from(text), kind="CPU", device_id=0, available=CPU_ONLY) == [
        ("CPUExecutionProvider", {})
    ]


def test_legacy_cuda_parameters_win_over_the_cuda_accelerator(config_from):
    text = """optimization { execution_accelerators { gpu_execution_accelerator [ {
        name: "cuda" parameters { key: "gpu_mem_limit" value: "1" }
        parameters { key: "arena_extend_strategy" value: "" } } ] } }
        parameters { key: "gpu_mem_limit" value { string_value: "2" } }"""
    (cuda, _) = select_providers(config_from(text), kind="GPU", device_id=0, available=CUDA_ONLY)
    assert cuda == ("CUDAExecutionProvider", {"gpu_mem_limit": "2", "device_id": "0"})


_VALUES = {
    "bool": st.sampled_from(["true", "false", "1", "0", "on", "OFF", "True"]),
    "int": st.integers(-3, 1 << 20).map(str),
    "uint": st.integers(0, 1 << 40).map(str),
    "text": st.text("abc/_.-:x0123456789", min_size=1, max_size=12),
}


@st.composite
def trt_parameters(draw):
    keys = draw(st.lists(st.sampled_from(sorted(_TRT_PARAMETERS)), unique=True, max_size=8))
    return {key: draw(_VALUES[_TRT_PARAMETERS[key][1]]) for key in keys}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=trt_parameters(), device=st.integers(0, 7))
def test_every_triton_parameter_maps_to_its_onnxruntime_option(config_from, params, device):
    (trt, cuda, cpu) = select_providers(trt_config(config_from, params), kind="GPU", device_id=device, available=ALL)
    assert trt[0] == "TensorrtExecutionProvider" and cuda[0] == "CUDAExecutionProvider" and cpu[0] == "CPUExecutionProvider"  # noqa: E501
    expected = {_TRT_PARAMETERS[k][0] for k in params} | {"device_id"}
    assert set(trt[1]) == expected
    assert trt[1]["device_id"] == str(device) and cuda[1]["device_id"] == str(device)
    for key, value in params.items():
        option, kind = _TRT_PARAMETERS[key]
        if kind == "bool":
            assert trt[1][option] == str(value.lower() in ("true", "1", "on"))
        elif kind in ("int", "uint"):
            assert int(trt[1][option]) == int(value)
        else:
            assert trt[1][option] == value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_any_other_key_is_refused(config_from, key):
    if key in _TRT_PARAMETERS or key == "precision_mode":
        return
    with pytest.raises(ConfigError, match="is provided for TensorRT Execution Accelerator"):
        select_providers(trt_config(config_from, {key: "1"}), kind="GPU", device_id=0, available=ALL)


# ---------------------------------------------------------------------------- with the real onnxruntime
def test_openvino_accelerator_fails_the_load_with_the_installed_onnxruntime(onnx_graphs, model_writer, backend,
                                                                           config_from):
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO provider")
    source = model_writer("m", onnx_graphs.identity(onnx_graphs.TensorProto.FLOAT))
    text = 'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }'
    config = backend.auto_complete_config(source, config_from(text))
    with pytest.raises(ConfigError, match="unknown Execution Accelerator 'openvino' is requested") as info:
        backend.create_instance(source, config, InstancePlacement("m_0", "CPU", 0, "g", 0))
    for provider in ort.get_available_providers():
        assert provider in str(info.value)
