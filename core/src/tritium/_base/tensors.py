"""Requests, responses and tensors: the objects that cross between frontends and the data plane.

They are plain attrs classes holding numpy arrays and no references to model objects, so that a frontend can
one day live in another process than the models (ARCHITECTURE.md, "Growing past one core").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from tritium._base.datatypes import DataType

ParameterValue = bool | int | float | str


@attrs.define(slots=True, frozen=True)
class Tensor:
    """A named tensor. ``data`` is a numpy array; BYTES tensors are object arrays of ``bytes``."""

    name: str
    datatype: DataType
    data: np.ndarray[Any, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @classmethod
    def from_numpy(cls, name: str, array: np.ndarray[Any, Any]) -> Tensor:
        """A tensor whose datatype is derived from the array's dtype."""
        return cls(name, DataType.from_numpy(array.dtype), array)


@attrs.define(slots=True, frozen=True)
class RequestedOutput:
    """An output the client asked for. ``classification`` > 0 asks for the top-k classification form;
    ``parameters`` holds the remaining per-output parameters (frontends keep their own, e.g. binary_data)."""

    name: str
    classification: int = 0
    parameters: Mapping[str, ParameterValue] = attrs.field(factory=dict)


@attrs.define(slots=True, kw_only=True)
class InferenceRequest:
    """One inference request, protocol-neutral.

    ``model_version`` -1 means "the version the model's version policy serves" (the newest ready one).
    ``inputs`` maps input name to tensor, in the order the client sent them. An empty ``requested_outputs``
    means every output. ``timeout_us`` 0 means no timeout; ``priority`` 0 means the model's default.
    ``sequence_id`` 0 or "" means no sequence. ``parameters`` are the custom (non-reserved) parameters a
    backend may read. ``call_chain`` names the models whose executions submitted this request through a
    :class:`tritium.abc.ModelClient`, outermost first (empty for a client's request); the kernel fills it.
    """

    model_name: str
    inputs: dict[str, Tensor]
    model_version: int = -1
    id: str = ""
    requested_outputs: list[RequestedOutput] = attrs.field(factory=list)
    parameters: dict[str, ParameterValue] = attrs.field(factory=dict)
    priority: int = 0
    timeout_us: int = 0
    sequence_id: int | str = 0
    sequence_start: bool = False
    sequence_end: bool = False
    # Filled by the data plane while the request is processed.
    batch_size: int = 0
    arrival_ns: int = 0
    call_chain: tuple[str, ...] = ()


@attrs.define(slots=True, kw_only=True)
class InferenceResponse:
    """The answer to one request. ``final`` is False for all but the last response of a decoupled model."""

    model_name: str
    model_version: str
    id: str = ""
    outputs: list[Tensor] = attrs.field(factory=list)
    parameters: dict[str, ParameterValue] = attrs.field(factory=dict)
    final: bool = True
