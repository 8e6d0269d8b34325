"""Requests, responses and errors as plain tuples for the control channel, their tensors inline or in an arena.

A tensor travels as ``(name, datatype, shape, offset, payload)``: ``offset`` >= 0 is where its bytes lie in
the sender's arena (``payload`` is then their length); ``offset`` -1 means ``payload`` holds the bytes
themselves (sent as raw bytes, never as a pickled array): a tensor under :data:`INLINE_BYTES`, or one the
arena had no room for. BYTES tensors travel in
Triton's length-prefixed binary form. Everything else in a message is str/int/float/bool/tuple/dict, which the
channel serializes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.errors import FailureReason, StatusCode, TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from tritium._multiproc.arena import ArenaReader, ArenaWriter
from tritium.codec import decode_bytes_elements, encode_bytes_elements

TensorTuple = tuple[str, str, tuple[int, ...], int, Any]
_BY_NAME = {member.value: (member, member.numpy_dtype) for member in DataType}

INLINE_BYTES = 4096
"""Tensors smaller than this travel inside the message, not through the arena. An arena block costs a block
header, a weak reference and a release callback for its zero-copy view: measured round trip (encode, pickle,
decode) 15-19 µs for a 64-byte or 2 KiB tensor through the arena, 6-10 µs inline, where copying 4 KiB costs
well under a microsecond."""


def encode_tensor(tensor: Tensor, arena: ArenaWriter | None) -> TensorTuple:
    """The wire form of ``tensor``, its bytes copied into ``arena`` when it is not small and the arena has
    room."""
    datatype = tensor.datatype
    array = tensor.data
    if datatype is DataType.BYTES:
        data: Any = np.frombuffer(encode_bytes_elements(array), dtype=np.uint8)
    else:
        wanted = datatype.numpy_dtype
        if array.dtype != wanted:
            array = array.astype(wanted)
        data = np.ascontiguousarray(array)
    if arena is not None and data.nbytes >= INLINE_BYTES:
        offset = arena.write(data)
        if offset is not None:
            return (tensor.name, datatype.value, tuple(array.shape), offset, data.nbytes)
    return (tensor.name, datatype.value, tuple(array.shape), -1, data.tobytes())


def decode_tensor(item: TensorTuple, arena: ArenaReader | None) -> Tensor:
    """The tensor of a wire tuple: a zero-copy view of the sender's arena, or of the inline bytes."""
    name, datatype_name, shape, offset, payload = item
    datatype, dtype = _BY_NAME[datatype_name]
    if offset >= 0:
        if arena is None:
            raise TritiumError.internal(f"tensor '{name}' refers to an arena this channel does not have")
        raw = arena.view(offset, payload)
    elif datatype is not DataType.BYTES:
        return Tensor(name, datatype, np.frombuffer(payload, dtype=dtype).reshape(shape))
    else:
        raw = np.frombuffer(payload, dtype=np.uint8)
    if datatype is DataType.BYTES:
        elements = decode_bytes_elements(raw.data, name)
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
        return Tensor(name, datatype, array.reshape(shape))
    return Tensor(name, datatype, raw.view(dtype).reshape(shape))


def release_unused(items: list[TensorTuple], arena: ArenaReader | None) -> None:
    """Release the arena blocks of tensors of a message that will not be decoded (e.g. its request was
    cancelled, or decoding failed part way)."""
    if arena is None:
        return
    for item in items:
        if item[3] >= 0:
            arena.release(item[3])


def encode_request(request: InferenceRequest, arena: ArenaWriter | None) -> tuple[Any, ...]:
    """The wire form of a client request (the fields the data plane fills are not carried)."""
    return (
        request.model_name,
        request.model_version,
        request.id,
        [encode_tensor(t, arena) for t in request.inputs.values()],
        [(o.name, o.classification, dict(o.parameters)) for o in request.requested_outputs],
        request.parameters,
        request.priority,
        request.timeout_us,
        request.sequence_id,
        request.sequence_start,
        request.sequence_end,
    )


def decode_request(item: tuple[Any, ...], arena: ArenaReader | None) -> InferenceRequest:
    """The request of a wire tuple, its tensors viewing the arena."""
    name, version, rid, inputs, outputs, parameters, priority, timeout_us, seq_id, seq_start, seq_end = item
    tensors: dict[str, Tensor] = {}
    done = 0
    try:
        for tensor_item in inputs:
            done += 1
            tensor = decode_tensor(tensor_item, arena)
            tensors[tensor.name] = tensor
    except BaseException:
        release_unused(inputs[done:], arena)  # the failed one was released with its view, or is not a block
        raise
    return InferenceRequest(
        model_name=name,
        model_version=version,
        id=rid,
        inputs=tensors,
        requested_outputs=[RequestedOutput(n, c, p) for n, c, p in outputs],
        parameters=parameters,
        priority=priority,
        timeout_us=timeout_us,
        sequence_id=seq_id,
        sequence_start=seq_start,
        sequence_end=seq_end,
    )


def encode_response(response: InferenceResponse, arena: ArenaWriter | None) -> tuple[Any, ...]:
    return (
        response.model_name,
        response.model_version,
        response.id,
        [encode_tensor(t, arena) for t in response.outputs],
        response.parameters,
        response.final,
    )


def decode_response(item: tuple[Any, ...], arena: ArenaReader | None) -> InferenceResponse:
    name, version, rid, outputs, parameters, final = item
    decoded: list[Tensor] = []
    try:
        for tensor_item in outputs:
            decoded.append(decode_tensor(tensor_item, arena))
    except BaseException:
        release_unused(outputs[len(decoded) + 1 :], arena)
        raise
    return InferenceResponse(
        model_name=name, model_version=version, id=rid, outputs=decoded, parameters=parameters, final=final
    )


def encode_error(error: BaseException) -> tuple[str, str, str]:
    """A kernel error as ``(code, message, reason)``; anything else is INTERNAL with its text."""
    if isinstance(error, TritiumError):
        return (error.code.value, error.message, error.reason.value)
    return (StatusCode.INTERNAL.value, str(error) or type(error).__name__, FailureReason.OTHER.value)


def decode_error(item: tuple[str, str, str]) -> TritiumError:
    code, message, reason = item
    return TritiumError(StatusCode(code), message, reason=FailureReason(reason))
