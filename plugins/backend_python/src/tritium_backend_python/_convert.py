"""Between the kernel's objects and the runner's wire values (server side).

Requests become the runner's wire tuples (one per request of a batch: Triton hands a Python model the
requests, not a concatenated batch); results become the mapping ``ModelInstance.execute`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import tritium
from tritium import DataType, StatusCode, TritiumError
from tritium_backend_python._channel import pack_array, unpack_array

_BF16 = DataType.BF16
_STATUS = {code.value: code for code in StatusCode}


def wire_tensor(name: str, datatype: DataType, data: np.ndarray[Any, Any]) -> tuple[str, str, Any]:
    """``(name, wire datatype, array)``; BF16 travels as its uint16 bits, small arrays packed (see
    :func:`tritium_backend_python._channel.pack_array`)."""
    if datatype is _BF16:
        contiguous = data if data.flags.c_contiguous else data.copy()
        return name, "BF16", pack_array(contiguous.view(np.uint16))
    return name, datatype.value, pack_array(data)


def request_to_wire(request: tritium.InferenceRequest) -> tuple[Any, ...]:
    """The runner's view of one kernel request."""
    flags = (1 if request.sequence_start else 0) | (2 if request.sequence_end else 0)
    return (
        request.id,
        request.sequence_id,
        flags,
        request.parameters,
        [o.name for o in request.requested_outputs],
        [wire_tensor(name, t.datatype, t.data) for name, t in request.inputs.items()],
        request.timeout_us,
    )


def batch_to_wire(batch: tritium.Batch, input_types: Mapping[str, DataType]) -> list[tuple[Any, ...]]:
    """The requests of a batch; a warmup batch (no requests) becomes one request of its inputs."""
    if batch.requests:
        return [request_to_wire(r) for r in batch.requests]
    inputs = [wire_tensor(name, input_types.get(name) or DataType.from_numpy(array.dtype), array)
              for name, array in batch.inputs.items()]
    return [("", 0, 0, {}, sorted(batch.requested_outputs), inputs, 0)]


def error_from_wire(code: str, message: str) -> TritiumError:
    """The kernel error of a model's ``(code name, message)``; UNKNOWN is reported as INTERNAL."""
    status = _STATUS.get(code, StatusCode.INTERNAL)
    if status is StatusCode.UNKNOWN:
        status = StatusCode.INTERNAL
    return TritiumError(status, message, reason=tritium.FailureReason.BACKEND)


def outputs_from_wire(outputs: Sequence[tuple[str, str, Any]]) -> dict[str, np.ndarray[Any, Any]]:
    result: dict[str, np.ndarray[Any, Any]] = {}
    for name, datatype, packed in outputs:
        array = unpack_array(packed)
        if datatype == "BF16" and array.dtype.kind == "u":
            array = array.view(_BF16.numpy_dtype)
        result[name] = array
    return result


def results_to_outputs(results: Sequence[tuple[Any, ...]], batching: bool) -> Mapping[str, np.ndarray[Any, Any]]:
    """The outputs of one execution, as the kernel expects them.

    One request: its outputs, or its error raised. Several (a dynamic batch): each output concatenated along
    the batch dimension. The kernel's ``execute`` contract has no per-request errors yet, so an error of any
    request of a batch fails the whole batch, with that request's message (see docs/backend-python.md).
    """
    if len(results) == 1:
        result = results[0]
        if result[0] != "ok":
            raise error_from_wire(result[1], result[2])
        return outputs_from_wire(result[1])
    for result in results:
        if result[0] != "ok":
            raise error_from_wire(result[1], result[2])
    per_request = [outputs_from_wire(r[1]) for r in results]
    names = set(per_request[0])
    for outputs in per_request[1:]:
        names &= set(outputs)
    merged: dict[str, np.ndarray[Any, Any]] = {}
    for name in names:
        arrays = [outputs[name] for outputs in per_request]
        if not batching:
            raise TritiumError.internal("a model without batching executed several requests at once")
        try:
            merged[name] = np.concatenate(arrays, axis=0)
        except ValueError as exc:
            raise TritiumError(
                StatusCode.INTERNAL,
                f"the responses of a batch disagree on the shape of output '{name}': {exc}",
                reason=tritium.FailureReason.BACKEND,
            ) from None
    return merged
