"""What an ONNX model declares about its tensors, read from a loaded session.

Dimensions that the graph leaves open (a symbolic name such as ``"batch"``, or no value) are -1, as Triton's
onnxruntime backend reports them; a model is batchable when every input and output has such a first
dimension.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs


@attrs.define(frozen=True, slots=True)
class TensorInfo:
    """One graph input or output: its name, ONNX Runtime type string and dims (-1 where open)."""

    name: str
    ort_type: str
    dims: tuple[int, ...]

    @classmethod
    def from_node_arg(cls, arg: Any) -> TensorInfo:
        """From an ``onnxruntime.NodeArg`` (``session.get_inputs()`` item)."""
        shape = arg.shape if isinstance(arg.shape, list | tuple) else []
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)
        return cls(name=arg.name, ort_type=arg.type, dims=dims)


@attrs.define(frozen=True, slots=True)
class ModelSignature:
    """A model's inputs and outputs in graph order, plus the initializers a request may override."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    overridable: tuple[TensorInfo, ...] = ()

    @classmethod
    def from_session(cls, session: Any) -> ModelSignature:
        """Read the signature of an ``onnxruntime.InferenceSession``."""
        return cls(
            inputs=_infos(session.get_inputs()),
            outputs=_infos(session.get_outputs()),
            overridable=_infos(session.get_overridable_initializers()),
        )

    def input(self, name: str) -> TensorInfo | None:
        """The graph input (or overridable initializer) called ``name``, None when there is none."""
        for info in (*self.inputs, *self.overridable):
            if info.name == name:
                return info
        return None

    def output(self, name: str) -> TensorInfo | None:
        """The graph output called ``name``, None when there is none."""
        for info in self.outputs:
            if info.name == name:
                return info
        return None

    @property
    def batchable(self) -> bool:
        """Whether every input and output has a variable first dimension (Triton's batching test)."""
        return all(info.dims and info.dims[0] == -1 for info in (*self.inputs, *self.outputs))


def _infos(args: Iterable[Any]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo.from_node_arg(arg) for arg in args)
