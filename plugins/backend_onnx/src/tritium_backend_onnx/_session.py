"""ONNX Runtime session settings from a model configuration, as Triton's onnxruntime backend reads them.

- ``optimization { graph { level: N } }``: -1 basic, 1 extended (basic plus fusions), 2 none; anything else
  (or no ``graph`` section) enables every optimization.
- ``parameters``: ``intra_op_thread_count``, ``inter_op_thread_count`` (0 = ONNX Runtime's default),
  ``execution_mode`` (0 sequential, 1 parallel), ``enable_mem_arena``, ``enable_mem_pattern`` (booleans),
  ``memory.enable_memory_arena_shrinkage`` (a run option, e.g. ``"cpu:0"``), and any ``session.*`` key,
  handed to ONNX Runtime as a session config entry (Triton documents
  ``session.use_device_allocator_for_initializers``; every other ``session.*`` key of ONNX Runtime works
  the same way, e.g. ``session.intra_op.allow_spinning``).

:class:`SessionSettings` is plain data so that it can be checked without ONNX Runtime; :meth:`build`
turns it into ``onnxruntime.SessionOptions`` / ``RunOptions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tritium import ConfigError
from tritium.config import bool_parameter, int_parameter
from tritium.config import parameter_value as parameter

if TYPE_CHECKING:
    from tritium.config import ModelConfig

GRAPH_LEVELS: Mapping[int, str] = {
    -1: "ORT_ENABLE_BASIC",
    1: "ORT_ENABLE_EXTENDED",
    2: "ORT_DISABLE_ALL",
}
"""Triton's ``optimization.graph.level`` values; any other level means ``ORT_ENABLE_ALL``."""

RUN_CONFIG_KEYS = ("memory.enable_memory_arena_shrinkage",)
"""Parameters that are ONNX Runtime *run* options rather than session options."""


@attrs.define(frozen=True, slots=True)
class SessionSettings:
    """Everything a model's config says about its ONNX Runtime sessions (providers aside)."""

    graph_optimization_level: str = "ORT_ENABLE_ALL"
    execution_mode: str = "ORT_SEQUENTIAL"
    intra_op_num_threads: int = 0
    inter_op_num_threads: int = 0
    enable_cpu_mem_arena: bool | None = None
    enable_mem_pattern: bool | None = None
    session_config: Mapping[str, str] = attrs.field(factory=dict)
    run_config: Mapping[str, str] = attrs.field(factory=dict)
    log_severity_level: int = 3

    @classmethod
    def from_config(cls, config: ModelConfig) -> SessionSettings:
        """Read the settings; raises ConfigError for a value Triton would reject."""
        level = "ORT_ENABLE_ALL"
        if config.HasField("optimization") and config.optimization.HasField("graph"):
            level = GRAPH_LEVELS.get(config.optimization.graph.level, "ORT_ENABLE_ALL")
        mode = int_parameter(config, "execution_mode", 0)
        if mode not in (0, 1):
            raise ConfigError(
                "Invalid configuration value provided. Expected values for execution_mode are 0 or 1 but "
                f"got {mode} ."
            )
        intra = int_parameter(config, "intra_op_thread_count", 0)
        inter = int_parameter(config, "inter_op_thread_count", 0)
        session_config = {key: str(config.parameters[key].string_value) for key in config.parameters}
        session_config = {key: value for key, value in session_config.items() if key.startswith("session.")}
        run_config = {key: value for key in RUN_CONFIG_KEYS if (value := parameter(config, key)) is not None}
        return cls(
            graph_optimization_level=level,
            execution_mode="ORT_PARALLEL" if mode == 1 else "ORT_SEQUENTIAL",
            intra_op_num_threads=max(intra, 0),
            inter_op_num_threads=max(inter, 0),
            enable_cpu_mem_arena=bool_parameter(config, "enable_mem_arena"),
            enable_mem_pattern=bool_parameter(config, "enable_mem_pattern"),
            session_config=dict(sorted(session_config.items())),
            run_config=run_config,
        )

    def session_options(self) -> Any:
        """An ``onnxruntime.SessionOptions`` with these settings."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, self.graph_optimization_level)
        options.execution_mode = getattr(ort.ExecutionMode, self.execution_mode)
        if self.intra_op_num_threads > 0:
            options.intra_op_num_threads = self.intra_op_num_threads
        if self.inter_op_num_threads > 0:
            options.inter_op_num_threads = self.inter_op_num_threads
        if self.enable_cpu_mem_arena is not None:
            options.enable_cpu_mem_arena = self.enable_cpu_mem_arena
        if self.enable_mem_pattern is not None:
            options.enable_mem_pattern = self.enable_mem_pattern
        for key, value in self.session_config.items():
            options.add_session_config_entry(key, value)
        options.log_severity_level = self.log_severity_level
        return options

    def run_options(self) -> Any:
        """An ``onnxruntime.RunOptions`` with the run config entries, None when there are none."""
        if not self.run_config:
            return None
        import onnxruntime as ort

        options = ort.RunOptions()
        for key, value in self.run_config.items():
            options.add_run_config_entry(key, value)
        return options
