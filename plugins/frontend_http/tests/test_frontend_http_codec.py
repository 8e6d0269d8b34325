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


@pytest.mark.parametrize("big", [False, True])
def test_fp32_json_holds_every_number_that_rounds_to_a_finite_float32(big: bool) -> None:
    """float32's largest value prints as 3.4028235e+38, a little above it as a float64: it must come back, and
    so must anything below the point where float32 rounds to infinity; from there on the value is refused."""
    largest = float(np.finfo(np.float32).max)
    below = float(np.nextafter(2.0**128 - 2.0**103, 0))
    values = [3.4028235e38, -3.4028235e38, largest, below]
    if big:
        values.append(2.0**128 - 2.0**103)
    body = json.dumps({"inputs": [{"name": "X", "shape": [len(values)], "datatype": "FP32", "data": values}]})
    for path in ("fast", "checked"):  # an extra key sends the request down the checked decoder
        doc = json.loads(body)
        if path == "checked":
            doc["inputs"][0]["parameters"] = {}
        raw = json.dumps(doc).encode()
        if big:
            with pytest.raises(TritiumError, match="out of range for data-type 'FP32'"):
                decode_request(raw, len(raw), "m", "", max_input_size=1 << 20)
            continue
        request, _ = decode_request(raw, len(raw), "m", "", max_input_size=1 << 20)
        assert request.inputs["X"].data.tolist() == [largest, -largest, largest, largest]


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


# ------------------------------------------------------------------ fast path agrees with the checked path
_ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3))
_VALUES = st.one_of(
    st.integers(-(1 << 65), 1 << 65),
    st.integers(-5, 300),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=2),
    st.none(),
)


@st.composite
def _request_docs(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """Request documents in the common case, or one or more steps outside it, with a binary tail."""
    odds = draw(st.sampled_from([0, 0, 0, 2, 5, 20]))  # 0: nothing odd; n: each choice is odd with p = n/40

    def odd() -> bool:
        return draw(st.integers(0, 39)) < odds

    doc: dict[str, Any] = {}
    tail = b""
    if draw(st.booleans()):
        doc["id"] = draw(_ODD) if odd() else draw(st.text(max_size=4))
    if draw(st.booleans()):
        doc["parameters"] = (
            draw(st.one_of(st.dictionaries(st.sampled_from(["binary_data_output", "priority", "x"]), _ODD), _ODD))
            if odd()
            else {"binary_data_output": draw(st.booleans())}
        )
    inputs: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        datatype = draw(st.sampled_from([d.value for d in DataType]))
        shape: Any = draw(st.lists(st.integers(1, 3), max_size=3))
        if odd():
            shape = draw(st.one_of(st.lists(st.one_of(st.integers(-2, 3), st.just(1 << 63), st.booleans())), _ODD))
        tensor: dict[str, Any] = {
            "name": draw(_ODD) if odd() else draw(st.sampled_from(["A", "B", "C"])),
            "datatype": draw(st.one_of(_ODD, st.just("TYPE_INT32"))) if odd() else datatype,
            "shape": shape,
        }
        count = 1
        for d in shape if type(shape) is list else ():
            count *= d if type(d) is int and 0 <= d < 8 else 1
        binary = draw(st.booleans())
        if not binary or odd():
            if datatype == "BOOL":
                element: Any = st.booleans()
            elif datatype.startswith(("INT", "UINT")):
                element = st.integers(-5 if datatype[0] == "I" else 0, 300)
            else:
                element = st.floats(-9, 9)
            if odd():
                element = _VALUES
            n = count + draw(st.sampled_from([-1, 1])) if odd() else count
            data: Any = draw(st.lists(element, min_size=max(n, 0), max_size=max(n, 0)))
            if draw(st.booleans()) and len(data) == count and count and type(shape) is list:
                try:
                    data = np.array(data, dtype=object).reshape(shape).tolist()
                except (ValueError, TypeError):
                    pass
            tensor["data"] = data
        if binary or odd():
            itemsize = DataType(datatype).itemsize or 3
            size = count * itemsize + (draw(st.sampled_from([-1, 1, -count * itemsize])) if odd() else 0)
            params: dict[str, Any] = {"binary_data_size": size}
            if odd():
                params[draw(st.sampled_from(["shared_memory_region", "x", "binary_data_size"]))] = "r"
            tensor["parameters"] = params
            tail += draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
        if odd():
            tensor["extra"] = 1
        inputs.append(draw(_ODD) if odd() else tensor)
    if not odd():
        doc["inputs"] = inputs
    if draw(st.booleans()):
        outputs: Any = []
        for _ in range(draw(st.integers(0, 2))):
            output: dict[str, Any] = {"name": draw(st.sampled_from(["OUTPUT0", "OUTPUT1"]))}
            if draw(st.booleans()):
                output["parameters"] = (
                    draw(st.one_of(st.fixed_dictionaries({"classification": st.integers(0, 2)}), _ODD))
                    if odd()
                    else {"binary_data": draw(st.booleans())}
                )
            outputs.append(output)
        doc["outputs"] = draw(_ODD) if odd() else outputs
    if odd():
        tail += b"x"
    return doc, tail


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_request_docs(), header_length=st.integers(1, 9))
def test_fast_path_decodes_exactly_like_the_checked_path(
    case: tuple[dict[str, Any], bytes], header_length: int
) -> None:
    from tritium_frontend_http._inference import _decode_checked, _decode_common

    doc, tail = case
    body = b" " * header_length + tail
    fast = _decode_common(doc, body, header_length, "m", "2", LIMIT)
    if fast is None:
        return
    request, plan = _decode_checked(doc, memoryview(body), header_length, "m", "2", LIMIT, None)
    fast_request, fast_plan = fast
    assert fast_plan == plan
    assert list(fast_request.inputs) == list(request.inputs)
    for name, tensor in request.inputs.items():
        other = fast_request.inputs[name]
        assert (other.name, other.datatype) == (tensor.name, tensor.datatype)
        _same(other.data, tensor.data)
    assert attrs_without_inputs(fast_request) == attrs_without_inputs(request)


def attrs_without_inputs(request: Any) -> dict[str, Any]:
    import attrs

    fields = attrs.asdict(request, recurse=False)
    fields.pop("inputs")
    return fields


def test_fast_path_takes_the_common_requests() -> None:
    from tritium_frontend_http._inference import _decode_common

    json_body = orjson.dumps(
        {"id": "7", "inputs": [{"name": "A", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]}]}
    )
    assert _decode_common(orjson.loads(json_body), json_body, len(json_body), "m", "", LIMIT) is not None
    header = orjson.dumps(
        {
            "inputs": [{"name": "A", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}],
            "outputs": [{"name": "Y", "parameters": {"binary_data": True}}],
            "parameters": {"binary_data_output": True},
        }
    )
    body = header + np.ones(2, np.float32).tobytes()
    decoded = _decode_common(orjson.loads(header), body, len(header), "m", "", LIMIT)
    assert decoded is not None
    assert decoded[1].binary == {"Y": True} and decoded[1].default_binary


# ------------------------------------------------------------------------- JSON values out of range
_INT_TYPES = [DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8, DataType.UINT16,
              DataType.UINT32, DataType.UINT64]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_INT_TYPES),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=300),
    st.booleans(),
)
def test_out_of_range_is_exactly_what_a_cast_would_change(datatype: DataType, values: list[int], flat: bool) -> None:
    from tritium_frontend_http._tensors import out_of_range

    array = np.array(values)
    bad = out_of_range(array, datatype, values if flat else None)
    info = np.iinfo(datatype.numpy_dtype)
    outside = [v for v in values if not info.min <= v <= info.max]
    assert (bad is None) == (not outside)
    if bad is not None:
        assert bad in outside


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, width=64), min_size=1, max_size=300), st.booleans())
def test_out_of_range_fp32_is_a_finite_value_past_its_range(values: list[float], flat: bool) -> None:
    from tritium_frontend_http._tensors import out_of_range

    bad = out_of_range(np.array(values), DataType.FP32, values if flat else None)
    fmax = float(np.finfo(np.float32).max)
    outside = [v for v in values if fmax < abs(v) < float("inf")]
    assert (bad is None) == (not outside)
