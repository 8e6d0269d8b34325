"""Requests, responses and errors crossing between a worker and the executor: exact round trips, tensors
through the arena (or inline when it is full), and arena blocks released when nothing views them."""

from __future__ import annotations

import os
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium import DataType, InferenceRequest, InferenceResponse, RequestedOutput, StatusCode, Tensor, TritiumError
from tritium._base.errors import FailureReason
from tritium._multiproc.arena import ArenaReader, ArenaWriter
from tritium._multiproc.wire import (
    INLINE_BYTES,
    decode_error,
    decode_request,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
)
from tritium.testing import strategies as ts


def arenas(size: int = 1 << 20) -> tuple[ArenaWriter, ArenaReader]:
    writer = ArenaWriter(size)
    return writer, ArenaReader(os.dup(writer.fd), size)


def same_tensor(got: Tensor, sent: Tensor) -> None:
    assert (got.name, got.datatype, got.shape) == (sent.name, sent.datatype, sent.shape)
    if sent.datatype is DataType.BYTES:
        assert [bytes(x) for x in got.data.reshape(-1)] == [bytes(x) for x in sent.data.reshape(-1)]
    else:
        assert got.data.dtype == sent.datatype.numpy_dtype
        assert got.data.tobytes() == np.ascontiguousarray(sent.data).tobytes()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        ts.tensors(shape=ts.shapes(max_rank=3, max_side=5), allow_nan=True), max_size=4, unique_by=lambda t: t.name
    ),
    st.booleans(),
)
def test_request_round_trip_every_datatype(tensors: list[Tensor], arena_has_room: bool) -> None:
    writer, reader = arenas(1 << 20 if arena_has_room else 256)
    request = InferenceRequest(
        model_name="m",
        model_version=3,
        id="abc",
        inputs={t.name: t for t in tensors},
        requested_outputs=[RequestedOutput("OUT", 2, {"binary_data": True})],
        parameters={"p": 1.5, "q": "s", "r": True},
        priority=2,
        timeout_us=7,
        sequence_id="seq",
        sequence_start=True,
        sequence_end=False,
    )
    message = pickle.loads(pickle.dumps(encode_request(request, writer)))
    got = decode_request(message, reader)
    assert list(got.inputs) == list(request.inputs)
    for name, tensor in request.inputs.items():
        same_tensor(got.inputs[name], tensor)
    for field in (
        "model_name",
        "model_version",
        "id",
        "requested_outputs",
        "parameters",
        "priority",
        "timeout_us",
        "sequence_id",
        "sequence_start",
        "sequence_end",
    ):
        assert getattr(got, field) == getattr(request, field)
    del got
    assert reader.live_blocks == 0  # every block released once the request is gone


@settings(max_examples=100, deadline=None)
@given(st.lists(ts.tensors(shape=ts.shapes(max_rank=2, max_side=6)), max_size=3))
def test_response_round_trip(outputs: list[Tensor]) -> None:
    writer, reader = arenas()
    response = InferenceResponse(
        model_name="m", model_version="1", id="x", outputs=outputs, parameters={"a": 1}, final=False
    )
    got = decode_response(pickle.loads(pickle.dumps(encode_response(response, writer))), reader)
    assert (got.model_name, got.model_version, got.id, got.parameters, got.final) == ("m", "1", "x", {"a": 1}, False)
    for g, s in zip(got.outputs, outputs, strict=True):
        same_tensor(g, s)


def test_large_and_empty_tensors() -> None:
    writer, reader = arenas(64 << 20)
    big = Tensor("BIG", DataType.FP32, np.random.default_rng(0).random((256, 1024, 16), dtype=np.float32))
    empty = Tensor("EMPTY", DataType.INT64, np.zeros((0, 3), dtype=np.int64))
    strings = Tensor("S", DataType.BYTES, np.array([b"", b"\x00\xff", "é".encode()], dtype=object))
    request = InferenceRequest(model_name="m", inputs={t.name: t for t in (big, empty, strings)})
    got = decode_request(encode_request(request, writer), reader)
    for tensor in (big, empty, strings):
        same_tensor(got.inputs[tensor.name], tensor)


def test_non_contiguous_and_wrong_dtype_arrays_are_sent_as_their_datatype() -> None:
    writer, reader = arenas()
    strided = np.arange(24, dtype=np.int64).reshape(4, 6)[:, ::2]
    tensor = Tensor("T", DataType.INT32, strided)  # int64 data declared INT32: sent as INT32
    got = decode_request(encode_request(InferenceRequest(model_name="m", inputs={"T": tensor}), writer), reader)
    assert got.inputs["T"].data.dtype == np.int32
    np.testing.assert_array_equal(got.inputs["T"].data, strided)


def test_small_tensors_travel_inline_and_the_rest_through_the_arena() -> None:
    writer, reader = arenas()
    just_under = Tensor("SMALL", DataType.UINT8, np.arange(INLINE_BYTES - 1, dtype=np.uint8))
    at_limit = Tensor("LARGE", DataType.UINT8, np.arange(INLINE_BYTES, dtype=np.uint8))
    message = encode_request(InferenceRequest(model_name="m", inputs={"SMALL": just_under, "LARGE": at_limit}), writer)
    small, large = message[3]
    assert small[3] == -1 and isinstance(small[4], bytes)
    assert large[3] >= 0 and large[4] == INLINE_BYTES
    got = decode_request(message, reader)
    same_tensor(got.inputs["SMALL"], just_under)
    same_tensor(got.inputs["LARGE"], at_limit)


def test_full_arena_falls_back_to_inline_bytes() -> None:
    writer, reader = arenas(256)
    tensor = Tensor("T", DataType.FP32, np.ones(2 * INLINE_BYTES, dtype=np.float32))
    message = encode_request(InferenceRequest(model_name="m", inputs={"T": tensor}), writer)
    assert message[3][0][3] == -1 and isinstance(message[3][0][4], bytes)
    same_tensor(decode_request(message, reader).inputs["T"], tensor)


@given(st.sampled_from(list(StatusCode)), st.text(max_size=50), st.sampled_from(list(FailureReason)))
def test_error_round_trip(code: StatusCode, message: str, reason: FailureReason) -> None:
    got = decode_error(pickle.loads(pickle.dumps(encode_error(TritiumError(code, message, reason=reason)))))
    assert (got.code, got.message, got.reason) == (code, message, reason)


def test_other_exceptions_become_internal_errors() -> None:
    got = decode_error(encode_error(ValueError("boom")))
    assert got.code is StatusCode.INTERNAL and got.message == "boom"
