"""The TensorFlow backend's settings: ``--backend-config=tensorflow,...`` and a model config's ``parameters``.

Backend settings (one set for every TensorFlow model of the server), as Triton reads them:

- ``allow-soft-placement`` (bool, default true): TensorFlow places an op on the CPU when the device it was
  assigned has no kernel for it.
- ``gpu-memory-fraction`` (float in [0, 1], default 0): the share of each GPU's memory TensorFlow reserves up
  front; 0 lets it grow as needed.
- ``version`` (default 2): the TensorFlow major version. Only 2 exists here (Triton dropped TensorFlow 1 in
  23.04); 1 is refused with a message saying so.
- ``default-max-batch-size`` (int, default 4): what auto-complete gives a batchable model whose config sets
  no ``max_batch_size``.

Model settings, from ``parameters`` in config.pbtxt (string values, as in Triton): ``TF_NUM_INTRA_THREADS``,
``TF_NUM_INTER_THREADS`` (0 = TensorFlow's default), ``TF_USE_PER_SESSION_THREADS``, ``TF_GRAPH_TAG``,
``TF_SIGNATURE_DEF``, ``MAX_SESSION_SHARE_COUNT`` (instances on one device sharing a session, default 1) and
``TF_INIT_OPS_FILE`` (a JSON file ``{"init_ops": [...]}`` of ops a GraphDef runs once after loading), plus
``optimization { graph { level } }`` (-1: TensorFlow's graph optimizer off; 1 and 2: XLA JIT on) and the
``auto_mixed_precision`` GPU execution accelerator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from tritium import ConfigError
from tritium.config import parameter_value as parameter
from tritium.config import parse_bool_value, parse_float_value, parse_int_value

if TYPE_CHECKING:
    from tritium.config import ModelConfig

BACKEND_KEYS = ("allow-soft-placement", "gpu-memory-fraction", "version", "default-max-batch-size")
DEFAULT_MAX_BATCH_SIZE = 4
AUTO_MIXED_PRECISION = "auto_mixed_precision"
GPU_IO = "gpu_io"

_TRUE_WORDS = ("true", "on", "1", "yes")  # Triton's TensorFlow backend documents "yes" as well
_FALSE_WORDS = ("false", "off", "0", "no")


def parse_bool(value: str, what: str) -> bool:
    """Triton's boolean parsing (true/on/1, false/off/0) plus the yes/no its TensorFlow backend accepts."""
    return parse_bool_value(value, what, true_words=_TRUE_WORDS, false_words=_FALSE_WORDS)


@attrs.define(frozen=True, slots=True)
class BackendSettings:
    """``--backend-config=tensorflow,<key>=<value>`` settings, checked."""

    allow_soft_placement: bool = True
    gpu_memory_fraction: float = 0.0
    version: int = 2
    default_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE

    @property
    def allow_gpu_memory_growth(self) -> bool:
        """Triton's rule: memory grows on demand unless a fraction is reserved."""
        return self.gpu_memory_fraction == 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> BackendSettings:
        """Read and check the settings; ConfigError naming the flag for a bad value. Keys this backend does
        not read are ignored, since global ``--backend-config=<key>=<value>`` settings reach every backend."""
        def flag(key: str) -> str:
            return f"--backend-config=tensorflow,{key}"

        settings = cls()
        if (raw := options.get("allow-soft-placement")) is not None:
            settings = attrs.evolve(settings, allow_soft_placement=parse_bool(raw, flag("allow-soft-placement")))
        if (raw := options.get("gpu-memory-fraction")) is not None:
            fraction = parse_float_value(raw, flag("gpu-memory-fraction"))
            if not 0.0 <= fraction <= 1.0:
                raise ConfigError(f"{flag('gpu-memory-fraction')}={raw}: the fraction must be between 0 and 1")
            settings = attrs.evolve(settings, gpu_memory_fraction=fraction)
        if (raw := options.get("version")) is not None:
            version = parse_int_value(raw, flag("version"))
            if version != 2:
                raise ConfigError(
                    f"{flag('version')}={raw}: only TensorFlow 2 is supported (Triton dropped TensorFlow 1 in "
                    "release 23.04, and this backend runs the installed tensorflow 2.x)"
                )
            settings = attrs.evolve(settings, version=version)
        if (raw := options.get("default-max-batch-size")) is not None:
            settings = attrs.evolve(
                settings, default_max_batch_size=max(parse_int_value(raw, flag("default-max-batch-size")), 0)
            )
        return settings


@attrs.define(frozen=True, slots=True)
class ModelSettings:
    """What one model's config says about its TensorFlow sessions."""

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    use_per_session_threads: bool = False
    graph_tag: str | None = None
    signature_def: str | None = None
    max_session_share_count: int = 1
    init_ops_file: str | None = None
    graph_level: int | None = None
    auto_mixed_precision: bool = False

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelSettings:
        """Read the settings; ConfigError in Triton's words for a value Triton rejects."""
        name = config.name

        def non_negative(key: str) -> int:
            raw = parameter(config, key)
            value = 0 if raw is None else parse_int_value(raw, f"parameter '{key}'")
            if value < 0:
                raise ConfigError(
                    f"parameter '{key}' must be non-negative number for TensorFlow model '{name}'"
                )
            return value

        share = parameter(config, "MAX_SESSION_SHARE_COUNT")
        share_count = 1 if share is None else parse_int_value(share, "parameter 'MAX_SESSION_SHARE_COUNT'")
        if share_count <= 0:
            raise ConfigError(
                f"parameter 'MAX_SESSION_SHARE_COUNT' must be positive number for TensorFlow model '{name}'"
            )
        per_session = parameter(config, "TF_USE_PER_SESSION_THREADS")
        level = None
        if config.HasField("optimization") and config.optimization.HasField("graph"):
            level = int(config.optimization.graph.level)
        return cls(
            intra_op_threads=non_negative("TF_NUM_INTRA_THREADS"),
            inter_op_threads=non_negative("TF_NUM_INTER_THREADS"),
            use_per_session_threads=(
                False if per_session is None else parse_bool(per_session, "parameter 'TF_USE_PER_SESSION_THREADS'")
            ),
            graph_tag=parameter(config, "TF_GRAPH_TAG") or None,
            signature_def=parameter(config, "TF_SIGNATURE_DEF") or None,
            max_session_share_count=share_count,
            init_ops_file=parameter(config, "TF_INIT_OPS_FILE") or None,
            graph_level=level,
            auto_mixed_precision=_accelerators(config),
        )


def _accelerators(config: ModelConfig) -> bool:
    """Check the execution accelerators as Triton does; True when auto mixed precision is asked for."""
    if not config.HasField("optimization"):
        return False
    accelerators = config.optimization.execution_accelerators
    if len(accelerators.cpu_execution_accelerator):
        raise ConfigError("CPU Execution Accelerator is not supported in TensorFlow backend")
    mixed = False
    for accelerator in accelerators.gpu_execution_accelerator:
        if accelerator.name == AUTO_MIXED_PRECISION:
            mixed = True
        elif accelerator.name == GPU_IO:
            continue  # a placement hint for GPU inputs; TensorFlow's Python API places them itself
        elif accelerator.name == "tensorrt":
            raise ConfigError(
                "the 'tensorrt' execution accelerator (TF-TRT) is not supported by Tritium's TensorFlow backend: "
                "convert the model with TF-TRT ahead of time or serve it with the tensorrt backend"
            )
        else:
            raise ConfigError(f"unknown Execution Accelerator '{accelerator.name}' is requested")
    return mixed


def read_init_ops(file_name: str, *, version_dir: Path, model_dir: Path) -> tuple[str, ...]:
    """The ``init_ops`` of ``TF_INIT_OPS_FILE``, looked up in the version folder first, then the model
    folder (Triton's order); ConfigError when missing or malformed. The name may not leave those folders."""
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        raise ConfigError(f"parameter 'TF_INIT_OPS_FILE' must name a file inside the model folder: '{file_name}'")
    for folder in (version_dir, model_dir):
        path = folder / file_name
        if path.is_file():
            break
    else:
        raise ConfigError(f"TF_INIT_OPS_FILE '{file_name}' not found in '{version_dir}' or '{model_dir}'")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unable to read TF_INIT_OPS_FILE '{path}': {exc}") from None
    ops = document.get("init_ops") if isinstance(document, dict) else None
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise ConfigError(f"TF_INIT_OPS_FILE '{path}' must hold {{\"init_ops\": [\"<op name>\", ...]}}")
    return tuple(ops)
