"""The self-contained checks of an ensemble configuration (Triton's ``ValidateEnsembleSchedulingConfig``).

An ensemble's tensors form a graph: each step's ``input_map`` values feed its ``output_map`` values. The
ensemble's inputs must feed something, every ensemble output must be reachable from the inputs, and no
ensemble tensor may be left dangling. Checking the steps against the configs of the models they call is the
ensemble scheduler's job (it needs those configs).
"""

from __future__ import annotations

import attrs

from tritium._model_config.backend import ENSEMBLE_PLATFORM
from tritium._model_config.errors import Problem
from tritium.proto.model_config_pb2 import ModelConfig


@attrs.define(eq=False)
class _Tensor:
    """One ensemble tensor in the data-flow graph."""

    name: str
    is_output: bool
    ready: bool = False
    prev: list[_Tensor] = attrs.field(factory=list)
    next: list[_Tensor] = attrs.field(factory=list)


def validate_ensemble(config: ModelConfig) -> None:
    """Raise Problem with Triton's message when the ensemble config is unusable on its own."""
    name = config.name
    if config.platform != ENSEMBLE_PLATFORM:
        raise Problem(
            "platform",
            f"ensemble scheduling cannot be set for model '{name}' whose platform is not {ENSEMBLE_PLATFORM}",
        )
    if config.instance_group:
        raise Problem("instance_group", f"instance group should not be specified for ensemble '{name}'")
    if config.HasField("optimization"):
        raise Problem("optimization", f"optimization should not be specified for ensemble '{name}'")
    if config.model_warmup:
        raise Problem("model_warmup", f"model_warmup can not be specified for ensemble '{name}'")
    if not config.ensemble_scheduling.step:
        raise Problem("ensemble_scheduling.step", f"must specify 'step' for ensemble '{name}'")
    tensors = _build_graph(config)
    _propagate_ready(config, tensors)
    outputs = _check_outputs(config, tensors)
    for tensor in tensors.values():
        if tensor.name not in outputs and (not tensor.ready or not tensor.next):
            raise Problem("ensemble_scheduling.step", f"ensemble tensor '{tensor.name}' is unused in ensemble '{name}'")


def _build_graph(config: ModelConfig) -> dict[str, _Tensor]:
    """Triton's BuildEnsembleGraph: link each step's mapped inputs to its mapped outputs."""
    name = config.name
    tensors: dict[str, _Tensor] = {}
    for index, step in enumerate(config.ensemble_scheduling.step):
        where = f"ensemble_scheduling.step[{index}]"
        for key in ("model_name", "input_map", "output_map"):
            if not getattr(step, key):
                raise Problem(f"{where}.{key}", f"must specify '{key}' in step {index} of ensemble '{name}'")
        produced = []
        for target in step.output_map.values():
            tensor = tensors.get(target)
            if tensor is None:
                tensor = tensors[target] = _Tensor(target, is_output=True)
            elif tensor.is_output:
                raise Problem(
                    f"{where}.output_map",
                    f"ensemble tensor '{target}' can appear in an output map only once for ensemble '{name}' "
                    f"step {index}",
                )
            else:
                tensor.is_output = True
            produced.append(tensor)
        for source in step.input_map.values():
            tensor = tensors.setdefault(source, _Tensor(source, is_output=False))
            for output in produced:
                output.prev.append(tensor)
                tensor.next.append(output)
    return tensors


def _propagate_ready(config: ModelConfig, tensors: dict[str, _Tensor]) -> None:
    """Mark every tensor computable from the ensemble inputs as ready."""
    queue: list[_Tensor] = []
    for tensor_config in config.input:
        tensor = tensors.get(tensor_config.name)
        if tensor is None:
            raise Problem(
                "input",
                f"ensemble input '{tensor_config.name}' for ensemble {config.name}' is not used",
            )
        tensor.ready = True
        queue.append(tensor)
    while queue:
        node = queue.pop(0)
        for following in node.next:
            if not following.ready and all(p.ready for p in following.prev):
                following.ready = True
                queue.append(following)


def _check_outputs(config: ModelConfig, tensors: dict[str, _Tensor]) -> set[str]:
    """Every ensemble output must be produced from the inputs; return their names."""
    outputs: set[str] = set()
    for tensor_config in config.output:
        tensor = tensors.get(tensor_config.name)
        if tensor is None:
            raise Problem("output", f"ensemble output '{tensor_config.name}' for ensemble {config.name}' is not used")
        if not tensor.ready:
            message = f"output '{tensor.name}' for ensemble '{config.name}' is not written"
            source = _unconnected_source(tensor)
            if source is not tensor:
                message += f": at least one of its depending tensors, '{source.name}', is not connected"
            raise Problem("output", message)
        outputs.add(tensor.name)
    return outputs


def _unconnected_source(tensor: _Tensor) -> _Tensor:
    """Follow not-ready predecessors back to where the data flow breaks (cycles are cut)."""
    seen: set[str] = set()
    last = tensor
    prev = tensor.prev
    while prev:
        step = next((p for p in prev if not p.ready and p.name not in seen), None)
        if step is None:
            break
        seen.add(step.name)
        last, prev = step, step.prev
    return last
