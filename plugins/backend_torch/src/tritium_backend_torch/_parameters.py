"""The ``parameters`` of a PyTorch model's config.pbtxt, read the way Triton's PyTorch backend reads them.

Every value is a ``string_value``. Booleans accept true/on/1 and false/off/0 in any case; anything else is
a load error naming the parameter. Unknown keys are ignored, as in Triton.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from tritium import ConfigError

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_TRUE = ("true", "on", "1")
_FALSE = ("false", "off", "0")


@attrs.define(frozen=True, slots=True)
class TorchParameters:
    """What the config's parameters ask for. ``None`` means "leave PyTorch's own setting alone".

    - ``optimized_execution``: TorchScript's graph-executor optimizations (``DISABLE_OPTIMIZED_EXECUTION``
      turns them off); default on.
    - ``inference_mode``: run under ``torch.inference_mode`` (``INFERENCE_MODE``), else under
      ``torch.no_grad``; default on.
    - ``cudnn``: cuDNN enabled (``DISABLE_CUDNN``); default on. GPU instances only.
    - ``cache_cleaning``: ``torch.cuda.empty_cache()`` after each execution (``ENABLE_CACHE_CLEANING``);
      GPU instances only; default off.
    - ``weight_sharing``: instances on the same device share one loaded module (``ENABLE_WEIGHT_SHARING``).
    - ``tensor_fuser`` / ``jit_profiling`` / ``jit_executor``: TorchScript's tensor-expression fuser,
      profiling executor and executor mode (``ENABLE_TENSOR_FUSER``, ``ENABLE_JIT_PROFILING``,
      ``ENABLE_JIT_EXECUTOR``); None keeps PyTorch's defaults.
    - ``intra_op_threads`` / ``inter_op_threads``: ``INTRA_OP_THREAD_COUNT`` / ``INTER_OP_THREAD_COUNT``;
      process-wide, the first model that sets them wins (as in Triton).
    """

    optimized_execution: bool = True
    inference_mode: bool = True
    cudnn: bool = True
    cache_cleaning: bool = False
    weight_sharing: bool = False
    tensor_fuser: bool | None = None
    jit_profiling: bool | None = None
    jit_executor: bool | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None

    @classmethod
    def from_config(cls, config: ModelConfig) -> TorchParameters:
        """Read the parameters of ``config``; ConfigError for a value that is not a boolean or a count."""
        params = {key: str(value.string_value) for key, value in config.parameters.items()}

        def flag(key: str) -> bool | None:
            return None if key not in params else _parse_bool(params[key], key)

        def count(key: str) -> int | None:
            if key not in params:
                return None
            value = _parse_int(params[key], key)
            return value if value > 0 else None  # Triton ignores counts <= 0

        disable_optimized = flag("DISABLE_OPTIMIZED_EXECUTION")
        inference_mode = flag("INFERENCE_MODE")
        disable_cudnn = flag("DISABLE_CUDNN")
        return cls(
            optimized_execution=not disable_optimized if disable_optimized is not None else True,
            inference_mode=inference_mode if inference_mode is not None else True,
            cudnn=not disable_cudnn if disable_cudnn is not None else True,
            cache_cleaning=bool(flag("ENABLE_CACHE_CLEANING")),
            weight_sharing=bool(flag("ENABLE_WEIGHT_SHARING")),
            tensor_fuser=flag("ENABLE_TENSOR_FUSER"),
            jit_profiling=flag("ENABLE_JIT_PROFILING"),
            jit_executor=flag("ENABLE_JIT_EXECUTOR"),
            intra_op_threads=count("INTRA_OP_THREAD_COUNT"),
            inter_op_threads=count("INTER_OP_THREAD_COUNT"),
        )


def _parse_bool(value: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"failed to convert '{value}' to boolean for parameter '{key}'")


def _parse_int(value: str, key: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"failed to convert '{value}' to integer for parameter '{key}'") from None
