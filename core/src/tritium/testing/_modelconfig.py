"""Small helpers over the ModelConfig message that the kit's strategies, fakes and mixins share.

Everything here works on any ``inference.ModelConfig`` message class (ours, or tritonclient's copy), reading
enum numbers through :meth:`tritium.DataType.from_config_enum`, so the kit needs nothing from the config
parser but the message class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tritium._base.datatypes import DataType
from tritium.config import ModelConfig

__all__ = [
    "ModelConfig",
    "batch_dims",
    "config_datatype",
    "full_dims",
    "is_decoupled",
    "is_refinement",
    "new_config",
]


def config_datatype(tensor: Any) -> DataType:
    """The :class:`tritium.DataType` of a ``ModelInput``/``ModelOutput`` (its ``data_type`` enum)."""
    return DataType.from_config_enum(int(tensor.data_type))


def is_decoupled(config: Any) -> bool:
    """Whether the config sets ``model_transaction_policy { decoupled: true }``."""
    return bool(config.model_transaction_policy.decoupled)


def full_dims(config: Any, tensor: Any) -> tuple[int, ...]:
    """The tensor's shape as a client sees it: ``[-1] + dims`` for batching models, else ``dims``."""
    dims = tuple(int(d) for d in tensor.dims)
    return (-1, *dims) if config.max_batch_size > 0 else dims


def batch_dims(config: Any, tensor: Any, batch_size: int) -> tuple[int, ...]:
    """``full_dims`` with the batch dimension (if any) set to ``batch_size``; other -1 dims stay -1."""
    dims = tuple(int(d) for d in tensor.dims)
    return (batch_size, *dims) if config.max_batch_size > 0 else dims


def new_config(
    name: str,
    *,
    backend: str = "",
    max_batch_size: int = 0,
    inputs: Iterable[tuple[str, DataType, Sequence[int]]] = (),
    outputs: Iterable[tuple[str, DataType, Sequence[int]]] = (),
    optional_inputs: Iterable[str] = (),
    decoupled: bool = False,
    dynamic_batching: bool = False,
    instance_count: int = 0,
    parameters: Mapping[str, str] | None = None,
) -> ModelConfig:
    """A ModelConfig from plain values: ``inputs``/``outputs`` are ``(name, datatype, dims)`` triples.

    ``instance_count`` > 0 adds one CPU instance group of that count.
    """
    config = ModelConfig(name=name, backend=backend, max_batch_size=max_batch_size)
    optional = set(optional_inputs)
    for tensor_name, datatype, dims in inputs:
        config.input.add(
            name=tensor_name,
            data_type=datatype.config_enum,
            dims=list(dims),
            optional=tensor_name in optional,
        )
    for tensor_name, datatype, dims in outputs:
        config.output.add(name=tensor_name, data_type=datatype.config_enum, dims=list(dims))
    if decoupled:
        config.model_transaction_policy.decoupled = True
    if dynamic_batching:
        config.dynamic_batching.SetInParent()
    if instance_count > 0:
        group = config.instance_group.add(count=instance_count)
        group.kind = group.KIND_CPU
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    return config


def is_refinement(original: Any, completed: Any, path: str = "") -> list[str]:
    """Where ``completed`` drops or changes something ``original`` set; empty when it only adds.

    Scalars set in ``original`` must be equal; messages are compared recursively; repeated messages that
    have a ``name`` field (inputs, outputs, instance groups) are matched by name, other repeated fields must
    be equal; map entries must all be kept. This is the rule for auto-complete: fill, never override.
    """
    problems: list[str] = []
    for field, value in original.ListFields():
        where = f"{path}{field.name}"
        other = getattr(completed, field.name)
        if _is_map(field):
            for key in value:
                if key not in other:
                    problems.append(f"{where}[{key!r}] was dropped")
                elif field.message_type.fields_by_name["value"].message_type is not None:
                    problems.extend(is_refinement(value[key], other[key], f"{where}[{key!r}]."))
                elif value[key] != other[key]:
                    problems.append(f"{where}[{key!r}] changed from {value[key]!r} to {other[key]!r}")
        elif _is_repeated(field):
            if field.message_type is not None and "name" in field.message_type.fields_by_name:
                by_name = {item.name: item for item in other}
                for item in value:
                    if item.name not in by_name:
                        problems.append(f"{where} entry {item.name!r} was dropped")
                    else:
                        problems.extend(is_refinement(item, by_name[item.name], f"{where}[{item.name!r}]."))
            elif list(value) != list(other):
                problems.append(f"{where} changed from {list(value)!r} to {list(other)!r}")
        elif field.message_type is not None:
            if not completed.HasField(field.name):
                problems.append(f"{where} was dropped")
            else:
                problems.extend(is_refinement(value, other, f"{where}."))
        elif value != other:
            problems.append(f"{where} changed from {value!r} to {other!r}")
    return problems


def _is_repeated(field: Any) -> bool:
    # protobuf >= 5 has ``is_repeated``; older versions only ``label``.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)


def _is_map(field: Any) -> bool:
    return _is_repeated(field) and field.message_type is not None and field.message_type.GetOptions().map_entry
