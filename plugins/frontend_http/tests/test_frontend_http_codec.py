"""Property tests of the HTTP tensor codec, in-process: every tensor round-trips through binary and (where
JSON can carry it) JSON, requests and responses alike; arbitrary bytes never crash the parser."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_frontend_http._inference import OutputPlan, decode_request, encode_response
from tritium_frontend_http._tensors import array_to_json

from tritium import DataType, InferenceResponse, Tensor, TritiumError, codec
from tritium.testing import strategies as tst

LIMIT = 1 << 26
JSON_TYPES = [d for d in DataType if d not in (DataType.FP16, DataType.BF16)]


def _utf8(array: np.ndarray[Any, Any]) -> bool:
    try:
        for item in array.reshape(-1):
            item.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> None:
    assert a.shape == b.shape
    if a.dtype == object or b.dtype == object:
        assert [bytes(x) for x in a.reshape(-1)] == [bytes(x) for x in b.reshape(-1)]
    else:
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


def _binary_request(tensor: Tensor) -> tuple[bytes, int]:
    data = bytes(codec.encode_tensor(tensor.data, tensor.datatype))
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": tensor.name,
                    "datatype": tensor.datatype.value,
                    "shape": list(tensor.shape),
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    )
    return header + data, len(header)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor=tst.tensors(shape=tst.shapes(min_side=0)))
def test_binary_request_round_trip(tensor: Tensor) -> None:
    body, header_length = _binary_request(tensor)
    request, _ = decode_request(body, header_length, "m", "", max_input_size=LIMIT)
    decoded = request.inputs[tensor.name]
    assert decoded.datatype is tensor.datatype
    _same(decoded.data, tensor.data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tensor=tst.tensors(datatype=st.sampled_from(JSON_TYPES), shape=tst.shapes(min_side=0)),
    nested=st.booleans(),
)
def test_json_request_round_trip(tensor: Tensor, nested: bool) -> None:
    if tensor.datatype is DataType.BYTES and not _utf8(tensor.data):
        return  # JSON strings cannot carry bytes that are not UTF-8
    flat = array_to_json(tensor.data, tensor.datatype, tensor.name)
    data = json.loads(orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY))
    if nested and tensor.data.size:
        data = np.array(data, dtype=object).reshape(tensor.shape).tolist()
    body = orjson.dumps(
        {"inputs": [{"name": "X", "datatype": tensor.datatype.value, "shape": list(tensor.shape), "data": data}]}
    )
    request, _ = decode_request(body, len(body), "m", "", max_input_size=LIMIT)
    _same(request.inputs["X"].data, tensor.data)


def _parse_response(body: bytes, header_length: int | None) -> dict[str, np.ndarray[Any, Any]]:
    header = json.loads(body[:header_length] if header_length is not None else body)
    offset = header_length or 0
    out = {}
    for output in header["outputs"]:
        datatype = DataType(output["datatype"])
        shape = tuple(output["shape"])
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            out[output["name"]] = codec.decode_tensor(datatype, shape, body[offset : offset + size], "o")
            offset += size
        elif datatype is DataType.BYTES:
            items = np.empty(len(output["data"]), dtype=object)
            items[:] = [s.encode() for s in output["data"]]
            out[output["name"]] = items.reshape(shape)
        else:
            out[output["name"]] = np.array(output["data"], dtype=datatype.numpy_dtype).reshape(shape)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor=tst.tensors(shape=tst.shapes(min_side=0)), binary=st.booleans())
def test_response_round_trip(tensor: Tensor, binary: bool) -> None:
    json_ok = tensor.datatype not in (DataType.FP16, DataType.BF16) and (
        tensor.datatype is not DataType.BYTES or _utf8(tensor.data)
    )
    binary = binary or not json_ok
    response = InferenceResponse(model_name="m", model_version="1", outputs=[tensor])
    body, header_length = encode_response(response, OutputPlan(default_binary=binary))
    carries_bytes = binary and len(codec.encode_tensor(tensor.data, tensor.datatype)) > 0
    assert (header_length is not None) == carries_bytes
    decoded = _parse_response(body, header_length)[tensor.name]
    _same(decoded, tensor.data)


def test_fp16_json_is_refused() -> None:
    body = b'{"inputs":[{"name":"X","datatype":"FP16","shape":[1],"data":[1.0]}]}'
    with pytest.raises(TritiumError) as info:
        decode_request(body, len(body), "m", "", max_input_size=LIMIT)
    assert info.value.message == (
        "receiving FP16 data via JSON is not supported. Please use the binary data format for input X"
    )
    response = InferenceResponse(
        model_name="m", model_version="1", outputs=[Tensor.from_numpy("Y", np.zeros(2, np.float16))]
    )
    with pytest.raises(TritiumError, match="sending FP16 data via JSON is not supported"):
        encode_response(response, OutputPlan(default_binary=False))


def test_binary_input_is_a_view_of_the_body() -> None:
    array = np.arange(16, dtype=np.int32)
    header = orjson.dumps(
        {"inputs": [{"name": "X", "datatype": "INT32", "shape": [16], "parameters": {"binary_data_size": 64}}]}
    )
    pad = b" " * ((-len(header)) % 8)  # JSON whitespace keeps the tensor aligned
    body = header + pad + array.tobytes()
    request, _ = decode_request(body, len(header) + len(pad), "m", "", max_input_size=LIMIT)
    data = request.inputs["X"].data
    assert np.shares_memory(data, np.frombuffer(body, dtype=np.uint8))
    np.testing.assert_array_equal(data, array)


_FRAGMENTS = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"inputs"',
        b'"outputs"',
        b'"name"',
        b'"X"',
        b'"shape"',
        b'"datatype"',
        b'"INT32"',
        b'"BYTES"',
        b'"FP16"',
        b'"data"',
        b'"parameters"',
        b'"binary_data_size"',
        b'"shared_memory_region"',
        b'"classification"',
        b'"binary_data"',
        b'"id"',
        b"1",
        b"-1",
        b"0",
        b"1e400",
        b"18446744073709551616",
        b"true",
        b"null",
        b"NaN",
        b'"\\u0000"',
        b"\xff",
        b" ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=200), st.lists(_FRAGMENTS, max_size=60).map(b"".join)),
    header_cut=st.integers(min_value=1, max_value=260),
)
def test_any_bytes_give_a_request_or_a_clean_error(body: bytes, header_cut: int) -> None:
    for length in {len(body), min(header_cut, len(body))}:
        if length == 0:
            continue
        try:
            decode_request(body, length, "m", "", max_input_size=1 << 16)
        except TritiumError as exc:
            assert exc.message
