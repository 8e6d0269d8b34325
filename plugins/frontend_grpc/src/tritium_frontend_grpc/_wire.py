"""Request messages as they come off the wire: parsed without copying tensor bytes, refused cleanly when
they are not protobuf.

``ModelInferRequest.raw_input_contents`` holds the request's tensors, often most of its bytes. Parsing the
whole message with protobuf copies them into the message, and reading the field copies them again into
Python ``bytes``: a request refused for a size mismatch would cost three times its size. Large requests are
therefore split first: a scan of the top-level fields takes the raw contents as views of the received buffer
and protobuf parses only the rest (names, shapes, parameters). Small requests, where a scan would cost more
than it saves, are parsed whole.

A body that is not a valid message becomes :class:`Malformed`, which handlers answer with INVALID_ARGUMENT
(grpc would otherwise answer UNKNOWN or INTERNAL, a server fault).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from tritium_frontend_grpc.proto import grpc_service_pb2 as pb

SPLIT_THRESHOLD = 64 * 1024
"""Requests at least this large are split (smaller ones are parsed whole: faster in C)."""
_RAW_FIELD = 7  # ModelInferRequest.raw_input_contents
_LENGTH_DELIMITED = 2


class Malformed:
    """A request body that could not be parsed; ``message`` says why."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class InferCall:
    """A ModelInferRequest and its raw input contents (views of the received buffer for large requests)."""

    __slots__ = ("msg", "raw")

    def __init__(self, msg: pb.ModelInferRequest, raw: Sequence[Any]) -> None:
        self.msg = msg
        self.raw = raw


def _malformed(what: str) -> Malformed:
    return Malformed(f"failed to parse the {what} message: the request body is not a valid protobuf message")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def split_raw_contents(data: bytes) -> tuple[bytes, list[memoryview]]:
    """The message without its ``raw_input_contents`` fields, and those fields as views of ``data``.

    Raises DecodeError when the top level is not well-formed protobuf.
    """
    view = memoryview(data)
    end = len(data)
    raw: list[memoryview] = []
    kept: list[memoryview] = []
    kept_from = 0
    pos = 0
    while pos < end:
        field_start = pos
        tag, pos = _varint(data, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos, end)
            if field == _RAW_FIELD:
                if pos + length > end:
                    raise DecodeError("truncated field")
                raw.append(view[pos : pos + length])
                if field_start > kept_from:
                    kept.append(view[kept_from:field_start])
                kept_from = pos + length
            pos += length
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        if pos > end:
            raise DecodeError("truncated field")
    if kept_from == 0:
        return data, raw
    if kept_from < end:
        kept.append(view[kept_from:end])
    return b"".join(kept), raw


def parse_infer_request(data: bytes) -> InferCall | Malformed:
    """The request deserializer of ModelInfer and ModelStreamInfer."""
    try:
        if len(data) < SPLIT_THRESHOLD:
            msg = pb.ModelInferRequest.FromString(data)
            return InferCall(msg, msg.raw_input_contents)
        rest, raw = split_raw_contents(data)
        return InferCall(pb.ModelInferRequest.FromString(rest), raw)
    except (DecodeError, RuntimeError, ValueError):
        return _malformed("ModelInferRequest")


def tolerant_deserializer(message_cls: Any) -> Callable[[bytes], Any]:
    """``message_cls.FromString`` that returns :class:`Malformed` instead of raising."""
    parse = message_cls.FromString
    what = message_cls.DESCRIPTOR.name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, RuntimeError, ValueError):
            return _malformed(what)

    return deserialize
