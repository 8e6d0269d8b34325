"""The defaults Triton fills into a model configuration (``NormalizeModelConfig``, ``NormalizeInstanceGroup``).

Each function mutates the message it is given; :func:`tritium.config.normalize_model_config` works on a copy.
"""

from __future__ import annotations

from tritium._model_config.backend import ONNXRUNTIME, TENSORFLOW
from tritium.proto.model_config_pb2 import ModelConfig, ModelInstanceGroup

SEQUENCE_IDLE_DEFAULT_MICROSECONDS = 1_000_000
"""``max_sequence_idle_microseconds`` when the config leaves it 0."""

DEFAULT_CPU_INSTANCE_COUNT = 2
"""Instances of a KIND_CPU group without ``count`` for the backends that opt in (see below)."""

_CPU_COUNT_BACKENDS = frozenset({TENSORFLOW, ONNXRUNTIME})


def fill_model_defaults(config: ModelConfig) -> None:
    """Version policy, preferred batch sizes, sequence idle time and pinned memory (NormalizeModelConfig)."""
    if not config.HasField("version_policy"):
        config.version_policy.latest.num_versions = 1
    if config.HasField("dynamic_batching"):
        batching = config.dynamic_batching
        if not batching.preferred_batch_size and config.max_batch_size > 0:
            batching.preferred_batch_size.append(config.max_batch_size)
    if config.HasField("sequence_batching"):
        sequence = config.sequence_batching
        if sequence.max_sequence_idle_microseconds == 0:
            sequence.max_sequence_idle_microseconds = SEQUENCE_IDLE_DEFAULT_MICROSECONDS
        oldest = sequence.oldest if sequence.HasField("oldest") else None
        if oldest is not None and not oldest.preferred_batch_size and config.max_batch_size > 0:
            oldest.preferred_batch_size.append(config.max_batch_size)
    if not config.HasField("ensemble_scheduling"):
        optimization = config.optimization
        if not optimization.HasField("input_pinned_memory"):
            optimization.input_pinned_memory.enable = True
        if not optimization.HasField("output_pinned_memory"):
            optimization.output_pinned_memory.enable = True


def fill_instance_groups(config: ModelConfig, gpu_count: int, *, auto_gpu: bool = True) -> None:
    """Instance groups (NormalizeInstanceGroup, without backend-preferred groups); not for ensembles.

    No group: one group named after the model. Per group: name ``<model>_<index>`` when unset; KIND_AUTO
    becomes KIND_GPU when GPUs exist, every listed one exists and ``auto_gpu`` (the backend can run on a GPU
    here), else KIND_CPU; a ``count`` below 1 becomes
    1 (2 for KIND_CPU groups of the onnxruntime and tensorflow backends); KIND_GPU without ``gpus`` gets
    every GPU.
    """
    if config.HasField("ensemble_scheduling"):
        return
    gpus = range(max(gpu_count, 0))
    if not config.instance_group:
        config.instance_group.add(name=config.name)
    for index, group in enumerate(config.instance_group):
        if not group.name:
            group.name = f"{config.name}_{index}"
        if group.kind == ModelInstanceGroup.KIND_AUTO:
            on_gpu = auto_gpu and len(gpus) > 0 and all(g in gpus for g in group.gpus)
            group.kind = ModelInstanceGroup.KIND_GPU if on_gpu else ModelInstanceGroup.KIND_CPU
        if group.count < 1:
            group.count = default_instance_count(group.kind, config.backend)
        if group.kind == ModelInstanceGroup.KIND_GPU and not group.gpus:
            group.gpus.extend(gpus)


def default_instance_count(kind: int, backend: str) -> int:
    """Triton's ``SetDefaultInstanceCount``: 2 for KIND_CPU groups of onnxruntime/tensorflow, else 1."""
    if kind == ModelInstanceGroup.KIND_CPU and backend in _CPU_COUNT_BACKENDS:
        return DEFAULT_CPU_INSTANCE_COUNT
    return 1
