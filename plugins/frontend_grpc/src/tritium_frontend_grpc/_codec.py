"""ModelInferRequest -> InferenceRequest and InferenceResponse -> ModelInferResponse.

Tensors arrive either as raw bytes (``raw_input_contents``, what tritonclient always sends), as typed
``contents`` fields, or in a registered system shared memory region; raw bytes become numpy arrays viewing
the received buffer (:func:`tritium.codec.decode_tensor`). Responses always carry raw bytes
(``raw_output_contents``), as Triton's do: tritonclient reads nothing else. Error messages are Triton's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

import numpy as np

from tritium import (
    DataType,
    InferenceRequest,
    InferenceResponse,
    ParameterValue,
    RequestedOutput,
    SharedMemoryRegistry,
    Tensor,
    TritiumError,
    codec,
    protocol,
)
from tritium_frontend_grpc._params import ShmOutput, apply_request_parameters, shm_params
from tritium_frontend_grpc.proto import grpc_service_pb2 as pb

_DATATYPES: dict[str, DataType] = {dt.value: dt for dt in DataType}
# Fixed-size datatypes whose raw bytes are a numpy view as they are: wire name -> (type, dtype, itemsize).
_VIEWABLE: dict[str, tuple[DataType, np.dtype[Any], int]] = {
    dt.value: (dt, dt.numpy_dtype, dt.itemsize) for dt in DataType if dt not in (DataType.BYTES, DataType.BOOL)
}

# The typed contents field that carries each datatype, and the datatype Triton names for each field in its
# "unexpected explicit tensor data ... of type 'X'" message.
_FIELD_OF: dict[DataType, str] = {
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
}
_FIELDS: tuple[tuple[str, str, np.dtype[Any] | None], ...] = (
    ("bool_contents", "BOOL", np.dtype(np.bool_)),
    ("int_contents", "INT32", np.dtype(np.int32)),
    ("int64_contents", "INT64", np.dtype(np.int64)),
    ("uint_contents", "UINT32", np.dtype(np.uint32)),
    ("uint64_contents", "UINT64", np.dtype(np.uint64)),
    ("fp32_contents", "FP32", np.dtype(np.float32)),
    ("fp64_contents", "FP64", np.dtype(np.float64)),
    ("bytes_contents", "BYTES", None),
)


parse_version = protocol.parse_model_version


def _datatype(name: str, io_name: str, msg: pb.ModelInferRequest) -> DataType:
    dt = _DATATYPES.get(name)
    if dt is None:
        raise TritiumError.invalid_arg(
            f"{protocol.request_prefix(msg.id)}inference input '{io_name}' data-type is 'INVALID', "
            f"but model '{msg.model_name}' expects a valid Triton datatype (got '{name}')"
        )
    return dt


def _check_shape(shape: tuple[int, ...], io_name: str, msg: pb.ModelInferRequest) -> None:
    for d in shape:
        if d < 0:
            raise TritiumError.invalid_arg(
                f"{protocol.request_prefix(msg.id)}unexpected shape for input '{io_name}' for model "
                f"'{msg.model_name}'. "
                f"Negative dimensions are not allowed, got {list(shape)}"
            )


def _decode(dt: DataType, shape: tuple[int, ...], buffer: Any, io_name: str, msg: pb.ModelInferRequest) -> Any:
    """Binary bytes -> numpy array, with Triton's size checks (a view of ``buffer`` where possible)."""
    count = codec.element_count(shape)
    if dt is DataType.BYTES:
        elements = codec.decode_bytes_elements(buffer, io_name)
        if len(elements) != count:
            raise TritiumError.invalid_arg(
                f"{protocol.request_prefix(msg.id)}expected {count} string elements for inference input '{io_name}' "
                f"for model '{msg.model_name}', got {len(elements)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    expected = count * dt.itemsize
    if len(buffer) != expected:
        raise TritiumError.invalid_arg(
            f"{protocol.request_prefix(msg.id)}input byte size mismatch for input '{io_name}' for model "
            f"'{msg.model_name}'. Expected {expected}, got {len(buffer)}"
        )
    return codec.decode_tensor(dt, shape, buffer, io_name)


def _from_contents(
    io: pb.ModelInferRequest.InferInputTensor, dt: DataType, shape: tuple[int, ...], msg: pb.ModelInferRequest
) -> Any:
    """Typed ``contents`` -> numpy array (INT8/16 and UINT8/16 truncated from 32 bits, as Triton does)."""
    contents = io.contents
    found: tuple[str, str, np.dtype[Any] | None] | None = None
    for field, field_type, np_dtype in _FIELDS:
        if len(getattr(contents, field)) == 0:
            continue
        if found is not None:
            raise TritiumError.invalid_arg(
                f"unexpected explicit tensor data for input tensor '{io.name}' for model "
                f"'{msg.model_name}', binary data was already supplied."
            )
        if _FIELD_OF.get(dt) != field:
            raise TritiumError.invalid_arg(
                f"unexpected explicit tensor data for input tensor '{io.name}' for model "
                f"'{msg.model_name}' of type '{field_type}', expected datatype '{dt.value}'"
            )
        found = (field, field_type, np_dtype)
    count = codec.element_count(shape)
    if found is None:
        values: Any = np.empty(0, dtype=dt.numpy_dtype)
    elif found[2] is None:  # BYTES
        values = np.empty(len(contents.bytes_contents), dtype=object)
        values[:] = list(contents.bytes_contents)
    else:
        values = np.array(getattr(contents, found[0]), dtype=found[2])
        if values.dtype != dt.numpy_dtype:
            values = values.astype(dt.numpy_dtype)
    if values.size != count:
        if dt is DataType.BYTES:
            raise TritiumError.invalid_arg(
                f"{protocol.request_prefix(msg.id)}expected {count} string elements for inference input '{io.name}' "
                f"for model '{msg.model_name}', got {values.size}"
            )
        raise TritiumError.invalid_arg(
            f"{protocol.request_prefix(msg.id)}input byte size mismatch for input '{io.name}' for model "
            f"'{msg.model_name}'. Expected {count * dt.itemsize}, got {values.size * dt.itemsize}"
        )
    return values.reshape(shape)


def _from_shm(
    io: pb.ModelInferRequest.InferInputTensor,
    dt: DataType,
    shape: tuple[int, ...],
    where: ShmOutput,
    msg: pb.ModelInferRequest,
    shm: SharedMemoryRegistry | None,
) -> Any:
    if io.HasField("contents"):
        raise TritiumError.invalid_arg(
            f"unexpected 'content' provided when using shared memory for input tensor '{io.name}' "
            f"for model '{msg.model_name}'"
        )
    array = _decode(dt, shape, read_shm(shm, where), io.name, msg)
    if array.base is not None and array.flags.writeable:
        array.flags.writeable = False  # a view of the client's memory: the model must not write into it
    return array


def read_shm(shm: SharedMemoryRegistry | None, where: ShmOutput) -> memoryview:
    """The bytes of a shared memory slice, with Triton's errors for unknown regions and bad ranges."""
    if shm is None or not shm.allowed:
        raise TritiumError.not_found(f"Unable to find shared memory region: '{where.region}'")
    try:
        region = shm.status(where.region)[0]
    except TritiumError:
        raise TritiumError.not_found(f"Unable to find shared memory region: '{where.region}'") from None
    if where.offset >= region["byte_size"]:
        raise TritiumError.invalid_arg(f"Invalid offset for shared memory region: '{where.region}'")
    if where.offset + where.byte_size > region["byte_size"]:
        raise TritiumError.invalid_arg(
            f"Invalid offset + byte size for shared memory region: '{where.region}'"
        )
    return shm.read(where.region, where.offset, where.byte_size)


def request_from_proto(
    msg: pb.ModelInferRequest,
    shm: SharedMemoryRegistry | None = None,
    forwarded: Mapping[str, str] | None = None,
    raw: Sequence[Any] | None = None,
) -> tuple[InferenceRequest, dict[str, ShmOutput] | None]:
    """Decode a ModelInferRequest into a kernel request, plus the outputs to write into shared memory
    (None when there are none). ``forwarded`` are headers matched by --grpc-header-forward-pattern; ``raw``
    are the raw input contents when they were split off the message (:mod:`._wire`), else the message's.

    Every size is checked against the declared shape before anything is copied, and every raw content must
    belong to an input: a surplus is an error, not silently ignored."""
    request = InferenceRequest(
        model_name=msg.model_name, inputs={}, model_version=parse_version(msg.model_version), id=msg.id
    )
    if msg.parameters:
        apply_request_parameters(request, msg.parameters)
    if forwarded:
        request.parameters.update(forwarded)

    inputs = request.inputs
    if raw is None:
        raw = msg.raw_input_contents
    raw_count = len(raw)
    raw_index = 0
    for io in msg.inputs:
        name = io.name
        shape = tuple(io.shape[:])  # slicing copies upb's repeated field in C
        if shape and min(shape) < 0:
            _check_shape(shape, name, msg)
        if raw_index < raw_count and not io.parameters and not io.HasField("contents"):
            # The hot path (what tritonclient sends): raw bytes of a fixed-size type -> a numpy view.
            buffer = raw[raw_index]
            raw_index += 1
            viewable = _VIEWABLE.get(io.datatype)
            if viewable is not None:
                dt, np_dtype, itemsize = viewable
                expected = prod(shape) * itemsize
                if len(buffer) != expected:
                    raise TritiumError.invalid_arg(
                        f"{protocol.request_prefix(msg.id)}input byte size mismatch for input '{name}' for model "
                        f"'{msg.model_name}'. Expected {expected}, got {len(buffer)}"
                    )
                array = np.frombuffer(buffer, np_dtype)
                if not array.flags.aligned:
                    array = array.copy()
                array = array.reshape(shape)
            else:
                dt = _DATATYPES.get(io.datatype) or _datatype(io.datatype, name, msg)
                array = _decode(dt, shape, buffer, name, msg)
        else:
            dt = _DATATYPES.get(io.datatype) or _datatype(io.datatype, name, msg)
            where = shm_params(io) if io.parameters else None
            if where is not None:
                array = _from_shm(io, dt, shape, where, msg, shm)
            elif io.HasField("contents"):
                if raw_count:
                    raise TritiumError.invalid_arg(
                        f"contents field must not be specified when using raw_input_contents for '{name}' "
                        f"for model '{msg.model_name}'"
                    )
                array = _from_contents(io, dt, shape, msg)
            elif raw_index < raw_count:
                array = _decode(dt, shape, raw[raw_index], name, msg)
                raw_index += 1
            else:
                raise TritiumError.invalid_arg(
                    f"unable to find data for input tensor '{name}' for model '{msg.model_name}' in request."
                )
        if name in inputs:
            raise TritiumError.invalid_arg(f"{protocol.request_prefix(msg.id)}input '{name}' already exists in request")
        inputs[name] = Tensor(name, dt, array)
    if raw_index != raw_count:
        raise TritiumError.invalid_arg(
            f"{protocol.request_prefix(msg.id)}expected {raw_index} raw_input_contents for the "
            f"{len(msg.inputs)} input(s) of the request for model '{msg.model_name}' (one per input sending "
            f"raw data), got {raw_count}"
        )

    shm_outputs: dict[str, ShmOutput] | None = None
    if msg.outputs:
        requested = request.requested_outputs
        seen: set[str] = set()
        for out in msg.outputs:
            name = out.name
            if name in seen:
                raise TritiumError.invalid_arg(
                    f"{protocol.request_prefix(msg.id)}output '{name}' already exists in request"
                )
            seen.add(name)
            classification = 0
            params: dict[str, ParameterValue] = {}
            if out.parameters:
                where = shm_params(out)
                classification = _classification(out)
                if where is not None:
                    if classification:
                        raise TritiumError.invalid_arg(
                            "output can't set both 'shared_memory_region' and 'classification'"
                        )
                    if shm_outputs is None:
                        shm_outputs = {}
                    shm_outputs[name] = where
                    read_shm(shm, where)  # fail before inference when the region is unusable
                params = {
                    k: _param_value(v)
                    for k, v in out.parameters.items()
                    if k != "classification" and not k.startswith("shared_memory_")
                }
            requested.append(RequestedOutput(name, classification, params))
    return request, shm_outputs


def _classification(out: pb.ModelInferRequest.InferRequestedOutputTensor) -> int:
    param = out.parameters.get("classification")
    if param is None:
        return 0
    if param.WhichOneof("parameter_choice") != "int64_param":
        raise TritiumError.invalid_arg(
            "invalid value type for 'classification' parameter, expected int64_param"
        )
    if param.int64_param <= 0:
        raise TritiumError.invalid_arg("invalid value for 'classification' parameter, expected >= 0")
    return int(param.int64_param)


def _param_value(param: pb.InferParameter) -> ParameterValue:
    which = param.WhichOneof("parameter_choice")
    return getattr(param, which) if which else ""


def set_parameter(target: pb.InferParameter, value: ParameterValue) -> None:
    """Store a Python value in an InferParameter (bool, int64, double or string)."""
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        if value > 0x7FFFFFFFFFFFFFFF:
            target.uint64_param = value
        else:
            target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def response_to_proto(
    response: InferenceResponse,
    out: pb.ModelInferResponse,
    shm: SharedMemoryRegistry | None = None,
    shm_outputs: Mapping[str, ShmOutput] | None = None,
) -> pb.ModelInferResponse:
    """Fill ``out`` from a kernel response: every output in ``raw_output_contents`` (shared memory
    outputs are written to their region and get an empty entry, as in Triton)."""
    out.model_name = response.model_name
    out.model_version = response.model_version
    if response.id:
        out.id = response.id
    if response.parameters:
        params = out.parameters
        for key, value in response.parameters.items():
            set_parameter(params[key], value)
    outputs = out.outputs
    raw = out.raw_output_contents
    for tensor in response.outputs:
        data = tensor.data
        dt = tensor.datatype
        outputs.add(name=tensor.name, datatype=dt.value, shape=data.shape)
        if dt is DataType.BYTES:
            payload: bytes = codec.encode_bytes_elements(data)
        else:
            if data.dtype != dt.numpy_dtype:
                data = data.astype(dt.numpy_dtype)
            payload = data.tobytes()
        if shm_outputs and tensor.name in shm_outputs:
            _write_shm(shm, shm_outputs[tensor.name], tensor.name, payload)
            payload = b""
        raw.append(payload)
    return out


def _write_shm(shm: SharedMemoryRegistry | None, where: ShmOutput, name: str, payload: bytes) -> None:
    if len(payload) > where.byte_size:
        raise TritiumError.invalid_arg(
            f"shared memory size specified with the request for output '{name}' ({where.byte_size} bytes) "
            f"should be at least {len(payload)} bytes to hold the results"
        )
    if not payload:
        return
    read_shm(shm, where)
    assert shm is not None
    shm.write(where.region, where.offset, payload, where.byte_size)
