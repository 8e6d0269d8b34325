"""Tensor and parameter conversion between gRPC messages and kernel objects (in-process, no network).

Requests are built with tritonclient's own classes and serialized, as the real client sends them, then
parsed with our message classes; responses are built by the frontend and read back with tritonclient's
``InferResult``: so the round trips check wire compatibility with NVIDIA's client for every datatype.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_frontend_grpc._codec import parse_version, request_from_proto, response_to_proto
from tritium_frontend_grpc.proto import grpc_service_pb2 as pb
from tritonclient.grpc import service_pb2 as client_pb

from tritium import DataType, InferenceResponse, StatusCode, Tensor, TritiumError
from tritium.testing import strategies as ts


def _same(a: np.ndarray, b: np.ndarray, datatype: DataType) -> None:
    assert a.shape == b.shape
    if datatype is DataType.BYTES:
        assert [bytes(x) for x in a.reshape(-1)] == [bytes(x) for x in b.reshape(-1)]
    else:
        assert np.asarray(a).view(np.uint8).tobytes() == np.ascontiguousarray(b).view(np.uint8).tobytes()


def _ours(client_request: client_pb.ModelInferRequest) -> pb.ModelInferRequest:
    return pb.ModelInferRequest.FromString(client_request.SerializeToString())


@settings(max_examples=60, deadline=None)
@given(data=st.data(), datatype=ts.datatypes())
def test_raw_input_round_trip_every_datatype(data: st.DataObject, datatype: DataType) -> None:
    """tritonclient's raw bytes decode to the same array, for every datatype."""
    array = data.draw(ts.arrays(datatype, ts.shapes(min_side=0)))
    infer_input = grpcclient.InferInput("INPUT0", list(array.shape), datatype.value)
    infer_input.set_data_from_numpy(array)
    message = client_pb.ModelInferRequest(model_name="m", id="r1")
    message.inputs.extend([infer_input._get_tensor()])
    message.raw_input_contents.extend([infer_input._get_content()])

    request, shm_outputs = request_from_proto(_ours(message))

    tensor = request.inputs["INPUT0"]
    assert shm_outputs is None
    assert tensor.datatype is datatype
    assert tensor.data.dtype == datatype.numpy_dtype
    _same(tensor.data, array, datatype)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), datatype=ts.datatypes(exclude=(DataType.FP16, DataType.BF16)))
def test_typed_contents_round_trip(data: st.DataObject, datatype: DataType) -> None:
    """The typed ``contents`` fields (every datatype that has one) decode to the same array."""
    array = data.draw(ts.arrays(datatype, ts.shapes(min_side=1)))
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="INPUT0", datatype=datatype.value, shape=array.shape)
    field = {
        DataType.BOOL: "bool_contents",
        DataType.INT8: "int_contents",
        DataType.INT16: "int_contents",
        DataType.INT32: "int_contents",
        DataType.INT64: "int64_contents",
        DataType.UINT8: "uint_contents",
        DataType.UINT16: "uint_contents",
        DataType.UINT32: "uint_contents",
        DataType.UINT64: "uint64_contents",
        DataType.FP32: "fp32_contents",
        DataType.FP64: "fp64_contents",
        DataType.BYTES: "bytes_contents",
    }[datatype]
    getattr(tensor.contents, field).extend(array.reshape(-1).tolist())

    request, _ = request_from_proto(message)

    decoded = request.inputs["INPUT0"].data
    assert decoded.dtype == datatype.numpy_dtype
    _same(decoded, array, datatype)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), datatype=ts.datatypes())
def test_response_round_trip_through_tritonclient(data: st.DataObject, datatype: DataType) -> None:
    """Responses are raw (raw_output_contents) and tritonclient reads back the same array."""
    array = data.draw(ts.arrays(datatype, ts.shapes(min_side=0)))
    response = InferenceResponse(
        model_name="m", model_version="3", id="x", outputs=[Tensor("OUT", datatype, array)], parameters={"p": 1}
    )
    ours = response_to_proto(response, pb.ModelInferResponse())
    assert len(ours.raw_output_contents) == 1
    assert not ours.outputs[0].HasField("contents")

    result = grpcclient.InferResult(client_pb.ModelInferResponse.FromString(ours.SerializeToString()))

    assert result.get_response().model_version == "3"
    assert result.get_response().id == "x"
    got = result.as_numpy("OUT")
    if datatype is DataType.BF16:
        got = got.astype(datatype.numpy_dtype)
    if datatype is DataType.BYTES:
        assert got.shape == array.shape
        assert [bytes(x) for x in got.reshape(-1)] == [bytes(x) for x in array.reshape(-1)]
    else:
        _same(got, array, datatype)


def test_raw_input_is_a_zero_copy_view() -> None:
    array = np.arange(16, dtype=np.float32)
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="INPUT0", datatype="FP32", shape=[16])
    message.raw_input_contents.append(array.tobytes())
    request, _ = request_from_proto(message)
    data = request.inputs["INPUT0"].data
    assert data.base is not None  # a view of the received bytes object, not a copy
    assert isinstance(data.base, bytes) or not data.flags.owndata


def test_request_fields_and_parameters() -> None:
    message = pb.ModelInferRequest(model_name="m", model_version="2", id="req")
    params = message.parameters
    params["sequence_id"].int64_param = 42
    params["sequence_start"].bool_param = True
    params["sequence_end"].bool_param = False
    params["priority"].uint64_param = 3
    params["timeout"].int64_param = 1500
    params["custom_int"].int64_param = -7
    params["custom_str"].string_param = "s"
    params["custom_bool"].bool_param = True
    params["custom_double"].double_param = 0.5
    params["triton_enable_empty_final_response"].bool_param = True
    message.inputs.add(name="INPUT0", datatype="INT32", shape=[1]).contents.int_contents.append(5)
    out = message.outputs.add(name="OUTPUT0")
    out.parameters["classification"].int64_param = 2
    message.outputs.add(name="OUTPUT1")

    request, _ = request_from_proto(message)

    assert (request.model_name, request.model_version, request.id) == ("m", 2, "req")
    assert request.sequence_id == 42 and request.sequence_start and not request.sequence_end
    assert (request.priority, request.timeout_us) == (3, 1500)
    assert request.parameters == {
        "custom_int": -7,
        "custom_str": "s",
        "custom_bool": True,
        "custom_double": 0.5,
        "triton_enable_empty_final_response": True,
    }
    assert [(o.name, o.classification) for o in request.requested_outputs] == [("OUTPUT0", 2), ("OUTPUT1", 0)]


def test_string_sequence_id_and_forwarded_headers() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.parameters["sequence_id"].string_param = "abc"
    request, _ = request_from_proto(message, forwarded={"x-user": "u1"})
    assert request.sequence_id == "abc"
    assert request.parameters == {"x-user": "u1"}


def _error(message: pb.ModelInferRequest) -> TritiumError:
    with pytest.raises(TritiumError) as info:
        request_from_proto(message)
    return info.value


@pytest.mark.parametrize(
    ("key", "setter", "text"),
    [
        (
            "sequence_id",
            "double_param",
            "invalid value type for 'sequence_id' parameter, expected int64_param or string_param.",
        ),
        ("sequence_start", "int64_param", "invalid value type for 'sequence_start' parameter, expected bool_param."),
        ("sequence_end", "string_param", "invalid value type for 'sequence_end' parameter, expected bool_param."),
        (
            "priority",
            "string_param",
            "invalid value type for 'priority' parameter, expected int64_param or uint64_param.",
        ),
        ("timeout", "uint64_param", "invalid value type for 'timeout' parameter, expected int64_param."),
        (
            "custom",
            "uint64_param",
            "invalid value type for 'custom' parameter, expected int64_param, bool_param, or string_param.",
        ),
    ],
)
def test_parameter_type_errors(key: str, setter: str, text: str) -> None:
    message = pb.ModelInferRequest(model_name="m")
    value = {"double_param": 1.5, "int64_param": 1, "string_param": "x", "uint64_param": 1}[setter]
    setattr(message.parameters[key], setter, value)
    error = _error(message)
    assert error.code is StatusCode.INVALID_ARG
    assert error.message == text


def test_reserved_triton_parameter_rejected() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.parameters["triton_secret"].bool_param = True
    assert _error(message).message == (
        "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys "
        "starting with 'triton_' are allowed: triton_enable_empty_final_response"
    )


def test_negative_priority_rejected() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.parameters["priority"].int64_param = -1
    assert _error(message).message == "invalid value for 'priority', expected value >= 0."


def test_tensor_data_errors() -> None:
    missing = pb.ModelInferRequest(model_name="m")
    missing.inputs.add(name="A", datatype="INT32", shape=[2])
    assert _error(missing).message == "unable to find data for input tensor 'A' for model 'm' in request."

    both = pb.ModelInferRequest(model_name="m")
    both.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    both.raw_input_contents.append(b"\0\0\0\0")
    assert _error(both).message == (
        "contents field must not be specified when using raw_input_contents for 'A' for model 'm'"
    )

    wrong_field = pb.ModelInferRequest(model_name="m")
    wrong_field.inputs.add(name="A", datatype="INT64", shape=[1]).contents.int_contents.append(1)
    assert _error(wrong_field).message == (
        "unexpected explicit tensor data for input tensor 'A' for model 'm' of type 'INT32', expected datatype 'INT64'"
    )

    short = pb.ModelInferRequest(model_name="m", id="r")
    short.inputs.add(name="A", datatype="INT32", shape=[2])
    short.raw_input_contents.append(b"\0\0\0\0")
    assert _error(short).message == (
        "[request id: r] input byte size mismatch for input 'A' for model 'm'. Expected 8, got 4"
    )

    strings = pb.ModelInferRequest(model_name="m")
    strings.inputs.add(name="S", datatype="BYTES", shape=[2])
    strings.raw_input_contents.append(b"\x01\x00\x00\x00a")
    assert _error(strings).message == (
        "[request id: <id_unknown>] expected 2 string elements for inference input 'S' for model 'm', got 1"
    )

    duplicate = pb.ModelInferRequest(model_name="m")
    for _ in range(2):
        duplicate.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    assert _error(duplicate).message == "[request id: <id_unknown>] input 'A' already exists in request"


def test_int8_and_uint16_contents_are_truncated_like_triton() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="A", datatype="INT8", shape=[2]).contents.int_contents.extend([1, 257])
    message.inputs.add(name="B", datatype="UINT16", shape=[1]).contents.uint_contents.append(65537)
    request, _ = request_from_proto(message)
    assert request.inputs["A"].data.tolist() == [1, 1]
    assert request.inputs["B"].data.tolist() == [1]


def test_classification_parameter_errors() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.outputs.add(name="O").parameters["classification"].int64_param = 0
    assert _error(message).message == "invalid value for 'classification' parameter, expected >= 0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", -1), ("1", 1), ("12", 12), ("007", 7)],
)
def test_version_strings(text: str, expected: int) -> None:
    assert parse_version(text) == expected


def test_bad_version_strings() -> None:
    with pytest.raises(TritiumError, match="failed to get model version from specified version string 'x'"):
        parse_version("x")
    with pytest.raises(TritiumError, match=r"invalid model version specified '-2' , version should be"):
        parse_version("-2")
