"""Which ONNX Runtime execution providers an instance uses, from its placement and the model config.

As Triton's onnxruntime backend builds them:

- A GPU instance uses CUDA on its device (``onnxruntime-gpu`` is needed), preceded by TensorRT when a
  ``gpu_execution_accelerator`` named ``tensorrt`` asks for it; ``gpu_execution_accelerator { name: "cuda"
  parameters {...} }`` passes CUDA provider options. The older model ``parameters`` ``cudnn_conv_algo_search``
  (0 exhaustive, 1 heuristic, 2 default), ``gpu_mem_limit``, ``arena_extend_strategy`` (0 next power of two,
  1 same as requested) and ``do_copy_in_default_stream`` still work and win over the accelerator's, as in
  Triton. A CPU instance ignores ``gpu_execution_accelerator`` entirely.
- Every instance (CPU or GPU) then gets the ``cpu_execution_accelerator``s (``openvino``: the OpenVINO
  provider on device type CPU), and CPU last, for the nodes no other provider runs.
- TensorRT accelerator parameters are Triton's exact set (``precision_mode`` FP32/FP16/BF16/INT8,
  ``max_workspace_size_bytes``, ``int8_calibration_table_name``, ``int8_use_native_calibration_table`` and
  Triton's ``trt_*`` keys); another key is an error, a key with an empty value is left out.
- An accelerator this onnxruntime cannot provide is a load error, never a silent fallback: Triton's builds
  answer ``unknown Execution Accelerator '<name>' is requested`` (INVALID_ARG) when the provider was not built
  in, and so does Tritium, adding which providers the installed onnxruntime has.

The choice is a pure function of the config, the placement and the providers available, so it is tested
without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tritium import ConfigError, TritiumError, install_command
from tritium.config import parameter_value as parameter
from tritium.config import parse_bool_value as parse_bool
from tritium.config import parse_int_value as parse_int

if TYPE_CHECKING:
    from tritium.config import ModelConfig

Provider = tuple[str, dict[str, str]]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"

_BOOL, _INT, _UINT, _TEXT = "bool", "int", "uint", "text"
# Triton's TensorRT accelerator parameters: its key -> (ONNX Runtime's option, how Triton checks the value).
_TRT_PARAMETERS: dict[str, tuple[str, str]] = {
    "max_workspace_size_bytes": ("trt_max_workspace_size", _UINT),
    "trt_max_partition_iterations": ("trt_max_partition_iterations", _INT),
    "trt_min_subgraph_size": ("trt_min_subgraph_size", _INT),
    "int8_calibration_table_name": ("trt_int8_calibration_table_name", _TEXT),
    "int8_use_native_calibration_table": ("trt_int8_use_native_calibration_table", _BOOL),
    "trt_dla_enable": ("trt_dla_enable", _BOOL),
    "trt_dla_core": ("trt_dla_core", _INT),
    "trt_engine_cache_enable": ("trt_engine_cache_enable", _BOOL),
    "trt_engine_cache_path": ("trt_engine_cache_path", _TEXT),
    "trt_engine_cache_prefix": ("trt_engine_cache_prefix", _TEXT),
    "trt_dump_subgraphs": ("trt_dump_subgraphs", _BOOL),
    "trt_force_sequential_engine_build": ("trt_force_sequential_engine_build", _BOOL),
    "trt_context_memory_sharing_enable": ("trt_context_memory_sharing_enable", _BOOL),
    "trt_layer_norm_fp32_fallback": ("trt_layer_norm_fp32_fallback", _BOOL),
    "trt_timing_cache_enable": ("trt_timing_cache_enable", _BOOL),
    "trt_timing_cache_path": ("trt_timing_cache_path", _TEXT),
    "trt_force_timing_cache": ("trt_force_timing_cache", _BOOL),
    "trt_detailed_build_log": ("trt_detailed_build_log", _BOOL),
    "trt_build_heuristics_enable": ("trt_build_heuristics_enable", _BOOL),
    "trt_sparsity_enable": ("trt_sparsity_enable", _BOOL),
    "trt_builder_optimization_level": ("trt_builder_optimization_level", _INT),
    "trt_auxiliary_streams": ("trt_auxiliary_streams", _INT),
    "trt_tactic_sources": ("trt_tactic_sources", _TEXT),
    "trt_extra_plugin_lib_paths": ("trt_extra_plugin_lib_paths", _TEXT),
    "trt_profile_min_shapes": ("trt_profile_min_shapes", _TEXT),
    "trt_profile_max_shapes": ("trt_profile_max_shapes", _TEXT),
    "trt_profile_opt_shapes": ("trt_profile_opt_shapes", _TEXT),
    "trt_cuda_graph_enable": ("trt_cuda_graph_enable", _BOOL),
    "trt_dump_ep_context_model": ("trt_dump_ep_context_model", _BOOL),
    "trt_ep_context_file_path": ("trt_ep_context_file_path", _TEXT),
    "trt_ep_context_embed_mode": ("trt_ep_context_embed_mode", _INT),
}
_PRECISION = {"FP32": None, "FP16": "trt_fp16_enable", "BF16": "trt_bf16_enable", "INT8": "trt_int8_enable"}
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
                f"({install_command('tritium-backend-onnx', 'gpu')}) or use instance_group {{ kind: KIND_CPU }}"
            )
        providers.extend(_gpu_providers(config, device_id, available))
    providers.extend(_cpu_accelerators(config, available))
    providers.append((CPU, {}))
    return providers


def _accelerators(config: ModelConfig, field: str) -> Sequence[object]:
    if not config.HasField("optimization"):
        return ()
    return list(getattr(config.optimization.execution_accelerators, field))


def _not_built_in(name: str, provider: str, available: Sequence[str], hint: str) -> ConfigError:
    """Triton's error for an accelerator its onnxruntime build lacks, saying what this one has (a load error:
    INVALID_ARG, as in Triton)."""
    return ConfigError(
        f"unknown Execution Accelerator '{name}' is requested: this onnxruntime has no {provider} "
        f"(available: {', '.join(available)}); {hint}"
    )


def _gpu_providers(config: ModelConfig, device_id: int, available: Sequence[str]) -> list[Provider]:
    tensorrt: dict[str, str] | None = None
    cuda: dict[str, str] = {}
    for accelerator in _accelerators(config, "gpu_execution_accelerator"):
        name = str(accelerator.name)  # type: ignore[attr-defined]
        params = dict(accelerator.parameters)  # type: ignore[attr-defined]
        if name == "tensorrt":
            if TENSORRT not in available:
                raise _not_built_in(
                    name, TENSORRT, available, "install an onnxruntime-gpu build with TensorRT (and TensorRT itself)"
                )
            tensorrt = _tensorrt_options(params)
        elif name == "cuda":
            for key, value in params.items():
                if key in ("do_copy_in_default_stream", "use_ep_level_unified_stream"):
                    parse_bool(value, f"CUDA execution accelerator parameter '{key}'")
                if value:
                    cuda[key] = value
        else:
            raise ConfigError(f"unknown Execution Accelerator '{name}' is requested")
    cuda.update(_legacy_cuda_options(config))  # applied after the accelerator's, so they win (as in Triton)
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
    """ONNX Runtime's TensorRT options for Triton's accelerator parameters (Triton's names and checks;
    booleans and integers are passed in canonical form)."""
    options: dict[str, str] = {}
    for key, value in params.items():
        if key == "precision_mode":
            if value not in _PRECISION:
                raise ConfigError(f"unsupported precision mode '{value}' is requested")
            if (flag := _PRECISION[value]) is not None:
                options[flag] = "True"
            continue
        if key not in _TRT_PARAMETERS:
            raise ConfigError(f"unknown parameter '{key}' is provided for TensorRT Execution Accelerator")
        target, kind = _TRT_PARAMETERS[key]
        what = f"TensorRT Execution Accelerator parameter '{key}'"
        if kind == _BOOL:
            options[target] = str(parse_bool(value, what))
        elif kind in (_INT, _UINT):
            number = parse_int(value, what)
            if kind == _UINT and number < 0:
                raise ConfigError(f"failed to convert '{value}' to unsigned integer for {what}")
            options[target] = str(number)
        elif value:
            options[target] = value
    return options


def _cpu_accelerators(config: ModelConfig, available: Sequence[str]) -> list[Provider]:
    providers: list[Provider] = []
    for accelerator in _accelerators(config, "cpu_execution_accelerator"):
        name = str(accelerator.name)  # type: ignore[attr-defined]
        if name == "openvino":
            if OPENVINO not in available:
                raise _not_built_in(name, OPENVINO, available, "install onnxruntime-openvino instead of onnxruntime")
            providers.append((OPENVINO, {"device_type": "CPU"}))
        else:
            raise ConfigError(f"unknown Execution Accelerator '{name}' is requested")
    return providers
