"""Validation of normalized instance groups, with Triton's messages (its ``ValidateInstanceGroup``)."""

from __future__ import annotations

import re

from tritium._model_config.backend import TENSORRT_PLATFORM
from tritium._model_config.errors import Problem
from tritium.proto.model_config_pb2 import ModelConfig, ModelInstanceGroup

MIN_COMPUTE_CAPABILITY = 6.0
"""Triton's default ``--min-supported-compute-capability``, quoted in its invalid-GPU message."""

_STOI = re.compile(r"\s*([+-]?\d+)")


def validate_instance_groups(config: ModelConfig, gpu_count: int, *, allow_soft_placement: bool) -> None:
    """Groups after normalization: kinds resolved, GPUs that exist, TensorRT-only profiles.

    With ``allow_soft_placement`` a KIND_GPU group may name GPUs this machine lacks (or none at all, when it
    has none): the server then places those instances on the CPU instead of failing the load.
    """
    if config.HasField("ensemble_scheduling"):
        return
    name = config.name
    if not config.instance_group:
        raise Problem("instance_group", f"must specify one or more 'instance group's for {name}")
    for index, group in enumerate(config.instance_group):
        where = f"instance_group[{index}]"
        prefix = f"instance group {group.name} of model {name}"
        kind = group.kind
        if kind in (ModelInstanceGroup.KIND_MODEL, ModelInstanceGroup.KIND_CPU) and group.gpus:
            kind_name = ModelInstanceGroup.Kind.Name(kind)
            raise Problem(f"{where}.gpus", f"{prefix} has kind {kind_name} but specifies one or more GPUs")
        if kind == ModelInstanceGroup.KIND_GPU and not allow_soft_placement:
            _check_gpus(group, where, prefix, gpu_count)
        if kind == ModelInstanceGroup.KIND_AUTO:
            raise Problem(f"{where}.kind", f"{prefix} has unexpected kind KIND_AUTO")
        if group.profile:
            _check_profiles(group, where, prefix, config.platform)


def _check_gpus(group: ModelInstanceGroup, where: str, prefix: str, gpu_count: int) -> None:
    if not group.gpus:
        reason = "no GPUs are available" if gpu_count <= 0 else "specifies no GPUs"
        raise Problem(f"{where}.gpus", f"{prefix} has kind KIND_GPU but {reason}")
    for gpu in group.gpus:
        if not 0 <= gpu < gpu_count:
            supported = ", ".join(str(g) for g in range(max(gpu_count, 0)))
            raise Problem(
                f"{where}.gpus",
                f"{prefix} specifies invalid or unsupported gpu id {gpu}. GPUs with at least the minimum "
                f"required CUDA compute compatibility of {MIN_COMPUTE_CAPABILITY:f} are: {supported}",
            )


def _check_profiles(group: ModelInstanceGroup, where: str, prefix: str, platform: str) -> None:
    if platform != TENSORRT_PLATFORM:
        raise Problem(
            f"{where}.profile",
            f"{prefix} and platform {platform}specifies profile field which is only supported for TensorRT models",
        )
    for profile in group.profile:
        if not profile:
            raise Problem(f"{where}.profile", "profile name must not be empty")
        index = _leading_int(profile)
        if index is None:
            raise Problem(f"{where}.profile", f"unable to parse '{profile}': stoi")
        if index < 0:
            raise Problem(
                f"{where}.profile",
                f"{prefix} and platform {platform} specifies invalid profile {profile}. The field should "
                "contain the string representation of a non-negative integer.",
            )


def _leading_int(text: str) -> int | None:
    """``std::stoi``: optional whitespace and sign, then digits; the rest is ignored. None if no digits."""
    match = _STOI.match(text)
    return int(match.group(1)) if match else None
