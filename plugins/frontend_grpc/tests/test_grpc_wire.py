"""Requests off the wire: raw contents split without copies, non-protobuf bodies refused cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_frontend_grpc._wire import (
    SPLIT_THRESHOLD,
    InferCall,
    Malformed,
    parse_infer_request,
    split_raw_contents,
    tolerant_deserializer,
)
from tritium_frontend_grpc.proto import grpc_service_pb2 as pb

names = st.text(min_size=0, max_size=8)


@st.composite
def infer_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name=draw(names), model_version=draw(names), id=draw(names))
    for key in draw(st.lists(names, max_size=3, unique=True)):
        msg.parameters[key].int64_param = draw(st.integers(-(2**63), 2**63 - 1))
    for _ in range(draw(st.integers(0, 3))):
        tensor = msg.inputs.add(name=draw(names), datatype="INT32", shape=draw(st.lists(st.integers(0, 9), max_size=3)))
        if draw(st.booleans()):
            tensor.parameters["binary_data_size"].int64_param = 4
    for _ in range(draw(st.integers(0, 2))):
        msg.outputs.add(name=draw(names))
    for _ in range(draw(st.integers(0, 4))):
        msg.raw_input_contents.append(draw(st.binary(max_size=300)))
    return msg


@settings(max_examples=200, deadline=None)
@given(infer_requests())
def test_splitting_agrees_with_protobuf(msg: pb.ModelInferRequest) -> None:
    data = msg.SerializeToString()
    rest, raw = split_raw_contents(data)
    parsed = pb.ModelInferRequest.FromString(rest)
    assert not parsed.raw_input_contents
    assert [bytes(r) for r in raw] == list(msg.raw_input_contents)
    parsed.raw_input_contents.extend(bytes(r) for r in raw)
    assert parsed == msg


@settings(max_examples=100, deadline=None)
@given(infer_requests(), st.binary(min_size=1, max_size=64))
def test_raw_fields_anywhere_in_the_message_are_found(msg: pb.ModelInferRequest, blob: bytes) -> None:
    """Protobuf allows fields in any order; a raw content before the other fields is still split off."""
    first = pb.ModelInferRequest()
    first.raw_input_contents.append(blob)
    data = first.SerializeToString() + msg.SerializeToString()
    rest, raw = split_raw_contents(data)
    assert [bytes(r) for r in raw] == [blob, *msg.raw_input_contents]
    parsed = pb.ModelInferRequest.FromString(rest)
    parsed.raw_input_contents.extend(bytes(r) for r in raw)
    assert parsed == pb.ModelInferRequest.FromString(data)


def test_large_requests_keep_views_of_the_received_buffer() -> None:
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="IN", datatype="UINT8", shape=[1, SPLIT_THRESHOLD])
    msg.raw_input_contents.append(b"\x07" * SPLIT_THRESHOLD)
    data = msg.SerializeToString()
    call = parse_infer_request(data)
    assert isinstance(call, InferCall) and call.msg.model_name == "m"
    (view,) = call.raw
    assert isinstance(view, memoryview) and view.obj is data and len(view) == SPLIT_THRESHOLD


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * SPLIT_THRESHOLD).map(lambda b: b * (1 + SPLIT_THRESHOLD // max(len(b), 1) // 8)))
def test_any_bytes_parse_or_are_malformed(data: bytes) -> None:
    call = parse_infer_request(data)
    assert isinstance(call, InferCall | Malformed)
    if isinstance(call, Malformed):
        assert "not a valid protobuf message" in call.message


@pytest.mark.parametrize(
    "data",
    [
        b"\xff" * 11,  # a varint past 64 bits
        b"\x0a\xff\xff\xff\x0f",  # a field longer than the body
        b"\x3a\x10abc",  # a raw content longer than the body
        b"\x00\x01",  # field number 0
        b"\x0b",  # wire type 3 (groups)
    ],
)
def test_broken_bodies_are_malformed(data: bytes) -> None:
    assert isinstance(parse_infer_request(data), Malformed)
    assert isinstance(parse_infer_request(data + b"\x00" * SPLIT_THRESHOLD), Malformed)
    assert isinstance(tolerant_deserializer(pb.ModelInferRequest)(data), Malformed)


def test_tolerant_deserializer_parses_valid_messages() -> None:
    message = pb.ModelReadyRequest(name="m", version="1")
    assert tolerant_deserializer(pb.ModelReadyRequest)(message.SerializeToString()) == message
