"""Which ONNX Runtime execution providers an instance uses, from its placement and the model config.

- A CPU instance uses the CPU provider, after any ``cpu_execution_accelerator`` (``openvino``, when this
  ONNX Runtime build has it).
- A GPU instance uses CUDA on its device (``onnxruntime-gpu`` is needed), preceded by TensorRT when a
  ``gpu_execution_accelerator`` named ``tensorrt`` asks for it, with CPU as the fallback for nodes the GPU
  providers cannot run. ``gpu_execution_accelerator { name: "cuda" parameters {...} }`` passes CUDA
  provider options; the older ``parameters`` keys ``cudnn_conv_algo_search`` (0 exhaustive, 1 heuristic,
  2 default), ``gpu_mem_limit``, ``arena_extend_strategy`` (0 next power of two, 1 same as requested) and
  ``do_copy_in_default_stream`` still work, as in Triton.
- TensorRT accelerator parameters use Triton's names (``precision_mode`` FP16/INT8,
  ``max_workspace_size_bytes``, ``int8_calibration_table_name``, ``int8_use_native_calibration_table``,
  and the ``trt_*`` options under their own names).

The choice is a pure function of the config, the placement and the providers available, so it is tested
without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tritium import ConfigError, TritiumError
from tritium_backend_onnx._configutil import parameter, parse_bool, parse_int

if TYPE_CHECKING:
    from tritium.config import ModelConfig

Provider = tuple[str, dict[str, str]]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"

_TRT_RENAMED = {
    "max_workspace_size_bytes": "trt_max_workspace_size",
    "int8_calibration_table_name": "trt_int8_calibration_table_name",
    "int8_use_native_calibration_table": "trt_int8_use_native_calibration_table",
}
_TRT_BOOL = {
    "trt_int8_use_native_calibration_table",
    "trt_dla_enable",
    "trt_engine_cache_enable",
    "trt_dump_subgraphs",
    "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable",
    "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable",
    "trt_force_timing_cache",
    "trt_detailed_build_log",
    "trt_build_heuristics_enable",
    "trt_sparsity_enable",
    "trt_cuda_graph_enable",
    "trt_dump_ep_context_model",
}
_TRT_INT = {
    "trt_max_workspace_size",
    "trt_max_partition_iterations",
    "trt_min_subgraph_size",
    "trt_dla_core",
    "trt_builder_optimization_level",
    "trt_auxiliary_streams",
    "trt_ep_context_embed_mode",
}
_TRT_STRING = {
    "trt_int8_calibration_table_name",
    "trt_engine_cache_path",
    "trt_engine_cache_prefix",
    "trt_timing_cache_path",
    "trt_tactic_sources",
    "trt_extra_plugin_lib_paths",
    "trt_profile_min_shapes",
    "trt_profile_max_shapes",
    "trt_profile_opt_shapes",
    "trt_ep_context_file_path",
}
_CUDNN_SEARCH = {0: "EXHAUSTIVE", 1: "HEURISTIC", 2: "DEFAULT"}
_ARENA_EXTEND = {0: "kNextPowerOfTwo", 1: "kSameAsRequested"}


def select_providers(
    config: ModelConfig, *, kind: str, device_id: int, available: Sequence[str]
) -> list[Provider]:
    """The ``(name, options)`` providers for an instance of ``kind`` ("CPU"/"GPU") on ``device_id``."""
    providers: list[Provider] = []
    if kind == "GPU":
        if CUDA not in available:
            raise TritiumError.unavailable(
                "a GPU instance needs ONNX Runtime's CUDA execution provider, which this onnxruntime lacks "
                f"(available: {', '.join(available)}); install onnxruntime-gpu "
                "(pip install 'tritium-backend-onnx[gpu]') or use instance_group { kind: KIND_CPU }"
            )
        providers.extend(_gpu_providers(config, device_id, available))
    providers.extend(_cpu_accelerators(config, available))
    providers.append((CPU, {}))
    return providers


def _accelerators(config: ModelConfig, field: str) -> Sequence[object]:
    if not config.HasField("optimization"):
        return ()
    return list(getattr(config.optimization.execution_accelerators, field))


def _gpu_providers(config: ModelConfig, device_id: int, available: Sequence[str]) -> list[Provider]:
    tensorrt: dict[str, str] | None = None
    cuda = _legacy_cuda_options(config)
    for accelerator in _accelerators(config, "gpu_execution_accelerator"):
        name = str(accelerator.name)  # type: ignore[attr-defined]
        params = dict(accelerator.parameters)  # type: ignore[attr-defined]
        if name == "tensorrt":
            if TENSORRT not in available:
                raise TritiumError.unavailable(
                    "the 'tensorrt' execution accelerator needs ONNX Runtime's TensorRT execution provider, "
                    f"which this onnxruntime does not have (available: {', '.join(available)})"
                )
            tensorrt = _tensorrt_options(params)
        elif name == "cuda":
            for key, value in params.items():
                if key in ("do_copy_in_default_stream", "use_ep_level_unified_stream"):
                    parse_bool(value, f"CUDA execution accelerator parameter '{key}'")
                cuda[key] = value
        else:
            raise ConfigError(f"unknown Execution Accelerator '{name}' is requested")
    cuda["device_id"] = str(device_id)
    providers: list[Provider] = []
    if tensorrt is not None:
        tensorrt["device_id"] = str(device_id)
        providers.append((TENSORRT, tensorrt))
    providers.append((CUDA, cuda))
    return providers


def _legacy_cuda_options(config: ModelConfig) -> dict[str, str]:
    options: dict[str, str] = {}
    if (value := parameter(config, "cudnn_conv_algo_search")) is not None:
        search = parse_int(value, "parameter 'cudnn_conv_algo_search'")
        if search not in _CUDNN_SEARCH:
            raise ConfigError(f"unsupported cudnn_conv_algo_search value '{search}' is requested")
        options["cudnn_conv_algo_search"] = _CUDNN_SEARCH[search]
    if (value := parameter(config, "gpu_mem_limit")) is not None:
        options["gpu_mem_limit"] = value
    if (value := parameter(config, "arena_extend_strategy")) is not None:
        strategy = parse_int(value, "parameter 'arena_extend_strategy'")
        if strategy not in _ARENA_EXTEND:
            raise ConfigError(f"unsupported arena_extend_strategy value '{strategy}' is requested")
        options["arena_extend_strategy"] = _ARENA_EXTEND[strategy]
    if (value := parameter(config, "do_copy_in_default_stream")) is not None:
        options["do_copy_in_default_stream"] = value
    return options


def _tensorrt_options(params: dict[str, str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in params.items():
        if key == "precision_mode":
            mode = value.upper()
            if mode == "FP16":
                options["trt_fp16_enable"] = "True"
            elif mode == "INT8":
                options["trt_int8_enable"] = "True"
            elif mode != "FP32":
                raise ConfigError(f"unsupported precision mode '{value}' is requested")
            continue
        target = _TRT_RENAMED.get(key, key)
        what = f"TensorRT Execution Accelerator parameter '{key}'"
        if target in _TRT_BOOL:
            options[target] = str(parse_bool(value, what))
        elif target in _TRT_INT:
            options[target] = str(parse_int(value, what))
        elif target in _TRT_STRING:
            options[target] = value
        else:
            raise ConfigError(f"unknown parameter '{key}' is provided for TensorRT Execution Accelerator")
    return options


def _cpu_accelerators(config: ModelConfig, available: Sequence[str]) -> list[Provider]:
    providers: list[Provider] = []
    for accelerator in _accelerators(config, "cpu_execution_accelerator"):
        name = str(accelerator.name)  # type: ignore[attr-defined]
        if name == "openvino" and OPENVINO in available:
            providers.append((OPENVINO, {"device_type": "CPU"}))
        elif name == "openvino":
            raise TritiumError.unavailable(
                "the 'openvino' execution accelerator needs ONNX Runtime's OpenVINO execution provider "
                "(pip install onnxruntime-openvino)"
            )
        else:
            raise ConfigError(f"unknown Execution Accelerator '{name}' is requested")
    return providers
