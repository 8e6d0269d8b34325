"""What a deserialized TensorRT engine declares, read once through TensorRT 10's named-tensor API.

``EngineInfo.read(engine)`` calls only: ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``get_tensor_dtype``, ``get_tensor_shape``, ``is_shape_inference_io``, ``get_tensor_format``,
``num_optimization_profiles`` and ``get_tensor_profile_shape``. The result is plain data, so auto-complete,
profile selection and validation are pure functions of it (tested against a test double of the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tritium import DataType
from tritium_backend_tensorrt._dtypes import datatype_of, trt_type_name
from tritium_backend_tensorrt._profiles import ProfileRange

Shape = tuple[int, ...]


def _name_of(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name) if name is not None else str(value).rsplit(".", 1)[-1]


def dims(value: Any) -> Shape:
    """A ``tensorrt.Dims`` (or any sequence of ints) as a tuple."""
    return tuple(int(d) for d in value)


@attrs.define(frozen=True, slots=True)
class TensorInfo:
    """One I/O tensor of the engine. ``shape`` has -1 for dynamic dimensions; ``datatype`` is None when
    the TensorRT type has no Triton mapping (``trt_type`` names it)."""

    name: str
    is_input: bool
    trt_type: str
    datatype: DataType | None
    shape: Shape
    is_shape_tensor: bool
    linear_format: bool


@attrs.define(frozen=True, slots=True)
class EngineInfo:
    """The engine's I/O tensors in engine order, and for each optimization profile the (min, opt, max)
    shapes of every non-shape input."""

    tensors: tuple[TensorInfo, ...]
    profiles: tuple[Mapping[str, ProfileRange], ...]

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.is_input)

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if not t.is_input)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)

    @classmethod
    def read(cls, engine: Any) -> EngineInfo:
        tensors = []
        for index in range(int(engine.num_io_tensors)):
            name = str(engine.get_tensor_name(index))
            trt_dtype = engine.get_tensor_dtype(name)
            tensors.append(
                TensorInfo(
                    name=name,
                    is_input=_name_of(engine.get_tensor_mode(name)) == "INPUT",
                    trt_type=trt_type_name(trt_dtype),
                    datatype=datatype_of(trt_dtype),
                    shape=dims(engine.get_tensor_shape(name)),
                    is_shape_tensor=bool(engine.is_shape_inference_io(name)),
                    linear_format=_name_of(engine.get_tensor_format(name)) == "LINEAR",
                )
            )
        profiles = []
        for profile in range(int(engine.num_optimization_profiles)):
            ranges = {}
            for tensor in tensors:
                if tensor.is_input and not tensor.is_shape_tensor:
                    low, opt, high = (dims(d) for d in engine.get_tensor_profile_shape(tensor.name, profile))
                    if len(low) == len(high) == len(opt) == len(tensor.shape):
                        ranges[tensor.name] = ProfileRange(low, opt, high)
                    elif all(d >= 0 for d in tensor.shape):  # no profile data for a static input
                        ranges[tensor.name] = ProfileRange(tensor.shape, tensor.shape, tensor.shape)
            profiles.append(ranges)
        return cls(tuple(tensors), tuple(profiles))

    def max_batch_size(self, profile_indices: tuple[int, ...]) -> int:
        """The largest batch the given profiles allow: per profile, the smallest max of the inputs' first
        dimension; over profiles, the largest (Triton's rule). 0 when an input has no dimension."""
        best = 0
        for index in profile_indices:
            ranges = self.profiles[index] if index < len(self.profiles) else {}
            limits = [r.max[0] if r.max else 0 for r in ranges.values()]
            best = max(best, min(limits) if limits else 0)
        return best
