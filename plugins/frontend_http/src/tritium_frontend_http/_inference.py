"""The ``/infer`` wire format: request bodies to :class:`tritium.InferenceRequest`, responses to bodies.

A request body is a JSON header (``Inference-Header-Content-Length`` bytes, or the whole body) optionally
followed by binary tensor data in the order the inputs appear; or, with a header length of 0, the raw
bytes of a model's single input. Checks and messages follow Triton's ``http_server.cc`` and, where Triton
leaves them to its core, the core's messages (``[request id: ...]`` prefix). Nothing here touches aiohttp,
so the codec is tested in-process with hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
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
from tritium_frontend_http import _jsonio as js
from tritium_frontend_http._errors import invalid, malformed, request_prefix, with_prefix
from tritium_frontend_http._tensors import (
    INT64_MAX,
    array_to_json,
    as_int64_dims,
    binary_to_array,
    bytes_array,
    json_bytes_elements,
    json_element_count,
    json_to_array,
    out_of_range,
    shape_to_string,
)

_OUTPUT_FRONTEND_PARAMS = frozenset(
    {"binary_data", "classification", "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"}
)
_DATATYPES = {dt.value: dt for dt in DataType}


@attrs.define(slots=True)
class OutputPlan:
    """How each output goes back: binary or JSON (``binary`` per requested output, else
    ``default_binary``), or into a registered shared memory region (``shm``: region, offset, size)."""

    default_binary: bool = False
    binary: dict[str, bool] = attrs.field(factory=dict)
    shm: dict[str, tuple[str, int, int]] = attrs.field(factory=dict)


@attrs.define(frozen=True, slots=True)
class RawInputSpec:
    """What a raw (header length 0) request needs from the model config: its inputs and batching."""

    inputs: tuple[tuple[str, DataType, tuple[int, ...]], ...]
    max_batch_size: int


def parse_version(version: str) -> int:
    """The kernel's version number for a URL version (``""`` = newest ready, -1)."""
    return int(version) if version else -1


def _uint_param(params: Mapping[str, Any], key: str, prefix: str) -> int:
    try:
        return js.as_uint(params[key])
    except TritiumError as exc:
        raise with_prefix(prefix, exc) from None


def _bool_param(params: Mapping[str, Any], key: str, prefix: str) -> bool:
    try:
        return js.as_bool(params[key])
    except TritiumError as exc:
        raise with_prefix(prefix, exc) from None


def custom_parameter(key: str, value: Any) -> ParameterValue:
    """A custom request parameter as Triton accepts it: string, integer, bool or number."""
    kind = type(value)
    if kind is str or kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return value if -(1 << 63) <= value < (1 << 63) else float(value)  # type: ignore[no-any-return]
    if kind is float:
        return value  # type: ignore[no-any-return]
    raise invalid(f"parameter '{key}' has invalid type. It should be either 'int', 'bool', or 'string'.")


def _apply_parameters(doc: dict[str, Any], request: InferenceRequest, plan: OutputPlan) -> None:
    params = doc["parameters"]
    if type(params) is not dict:
        raise malformed(f"failed to get request params.: {js.NOT_MEMBERS}")
    for key, value in params.items():
        if key == "sequence_id":
            if (type(value) is int and 0 <= value < (1 << 64)) or type(value) is str:
                request.sequence_id = value
            else:
                raise malformed(f"Unable to parse 'sequence_id': {js.NOT_STRING}")
        elif key == "sequence_start":
            request.sequence_start = _bool_param(params, key, "Unable to parse 'sequence_start'")
        elif key == "sequence_end":
            request.sequence_end = _bool_param(params, key, "Unable to parse 'sequence_end'")
        elif key == "priority":
            request.priority = _uint_param(params, key, "Unable to parse 'priority'")
        elif key == "timeout":
            request.timeout_us = _uint_param(params, key, "Unable to parse 'timeout'")
        elif key == "binary_data_output":
            plan.default_binary = _bool_param(params, key, "Unable to parse 'binary_data_output'")
        elif key.startswith("triton_"):
            raise invalid(
                "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified."
            )
        else:
            request.parameters[key] = custom_parameter(key, value)


def _validate_input_content(tensor: dict[str, Any], params: dict[str, Any] | None) -> None:
    has_data = "data" in tensor
    has_binary = params is not None and "binary_data_size" in params
    has_shm = params is not None and "shared_memory_region" in params
    if has_data + has_binary + has_shm == 1:
        return
    message = (
        "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', "
        "'shared_memory_region' in 'parameters'. But"
    )
    if not (has_data or has_binary or has_shm):
        message += " no field is set"
    else:
        message += " set"
        if has_data:
            message += " 'data'"
        if has_binary:
            message += " 'binary_data_size'"
        if has_shm:
            message += " 'shared_memory_region'"
    raise invalid(message)


def _tensor_parameters(tensor: dict[str, Any], kind: str, name: str | None) -> dict[str, Any] | None:
    """A tensor's ``parameters`` object (None when absent); anything but an object is the client's error
    (Triton ignores it, silently dropping e.g. ``binary_data_size``)."""
    params = tensor.get("parameters")
    if params is None or type(params) is dict:
        return params
    if name is None:
        name = tensor.get("name") if type(tensor.get("name")) is str else ""
    raise malformed(f"Unable to parse 'parameters' of {kind} '{name}': {js.NOT_OBJECT}")


def _shm_reference(params: Mapping[str, Any]) -> tuple[str, int, int]:
    try:
        region = js.as_str(params["shared_memory_region"])
    except TritiumError as exc:
        raise with_prefix("Unable to parse 'shared_memory_region'", exc) from None
    offset = (
        _uint_param(params, "shared_memory_offset", "Unable to parse 'shared_memory_offset'")
        if "shared_memory_offset" in params
        else 0
    )
    size = (
        _uint_param(params, "shared_memory_byte_size", "Unable to parse 'shared_memory_byte_size'")
        if "shared_memory_byte_size" in params
        else 0
    )
    return region, offset, size


def _member_str(obj: Any, name: str) -> str:
    try:
        return js.member_str(obj, name)
    except TritiumError as exc:
        raise with_prefix(f"Unable to parse '{name}'", exc) from None


def _parse_shape(tensor: Any) -> list[int]:
    try:
        dims = js.member_list(tensor, "shape")
        return [js.as_uint(d) for d in dims]
    except TritiumError as exc:
        raise with_prefix("Unable to parse 'shape'", exc) from None


def _decode_input(
    tensor: dict[str, Any],
    name: str,
    datatype: DataType | None,
    shape: list[int],
    body: memoryview,
    offset: int,
    model: str,
    request_id: str,
    max_input_size: int,
    shm: SharedMemoryRegistry | None,
) -> tuple[np.ndarray[Any, Any], int]:
    """One input's array, and the body offset after its binary data."""
    params = _tensor_parameters(tensor, "input", name)
    dims = as_int64_dims(shape)
    if params is not None and "binary_data_size" in params:
        size = _uint_param(params, "binary_data_size", "Unable to parse 'binary_data_size'")
        available = len(body) - offset
        if size > available:
            raise invalid(
                f"unexpected size for input '{name}', expecting {size - available} additional bytes for model '{model}'"
            )
        data = body[offset : offset + size]
        offset += size
        return _binary(datatype, dims, data, name, model, request_id), offset
    if params is not None and "shared_memory_region" in params:
        region, shm_offset, size = _shm_reference(params)
        if shm is None:
            raise TritiumError.not_found(f"Unable to find shared memory region: '{region}'")
        data = shm.read(region, shm_offset, size)
        return _binary(datatype, dims, data, name, model, request_id), offset
    count = json_element_count(dims, name)
    if count == 0:
        if datatype is None:
            raise invalid(f"invalid datatype for input {name}")
        holder = np.dtype(object) if datatype is DataType.BYTES else datatype.numpy_dtype
        return np.zeros(tuple(dims), dtype=holder), offset
    try:
        data_json = js.member_list(tensor, "data")
    except TritiumError as exc:
        raise with_prefix("Unable to parse 'data'", exc) from None
    if datatype is DataType.BYTES:
        elements = json_bytes_elements(data_json)
        byte_size = sum(len(e) for e in elements) + 4 * len(elements)
        _check_json_size(name, byte_size, max_input_size)
        return bytes_array(elements, tuple(dims), name, model, request_id), offset
    if datatype is None:
        raise invalid(f"invalid datatype for input {name}")
    itemsize = datatype.itemsize
    if itemsize > 1 and count > INT64_MAX // itemsize:
        raise invalid(
            f"byte size overflow for input '{name}': element count ({count}) * data type size ({itemsize}) "
            f"exceeds maximum allowed size ({INT64_MAX})"
        )
    _check_json_size(name, count * itemsize, max_input_size)
    return json_to_array(data_json, datatype, tuple(dims), name, count), offset


def _check_json_size(name: str, byte_size: int, max_input_size: int) -> None:
    if byte_size > max_input_size:
        raise invalid(
            f"JSON input '{name}' has a byte_size ({byte_size} bytes) that exceeds the maximum allowed value "
            f"of {max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )


def _binary(
    datatype: DataType | None,
    dims: list[int],
    data: memoryview,
    name: str,
    model: str,
    request_id: str,
) -> np.ndarray[Any, Any]:
    if datatype is None:
        raise invalid(f"invalid datatype for input {name}")
    if any(d < 0 for d in dims):
        raise invalid(
            f"invalid shape for input '{name}': shape {shape_to_string(dims)} contains one or more invalid dimensions"
        )
    return binary_to_array(datatype, tuple(dims), data, name, model, request_id)


def _parse_outputs(
    outputs: list[Any], request: InferenceRequest, plan: OutputPlan, shm: SharedMemoryRegistry | None
) -> None:
    seen: set[str] = set()
    for output in outputs:
        params = _tensor_parameters(output, "output", None) if type(output) is dict else None
        if params is not None and "shared_memory_region" in params:
            if "classification" in params:
                raise invalid("Output can't set both 'shared_memory_region' and 'classification'")
            if "binary_data" in params and _bool_param(params, "binary_data", "Unable to set 'binary_data'"):
                raise invalid("Output can't set both 'shared_memory_region' and 'binary_data'")
        name = _member_str(output, "name")
        if name in seen:
            raise invalid(f"{request_prefix(request.id)}output '{name}' already exists in request")
        seen.add(name)
        classification = 0
        extra: dict[str, ParameterValue] = {}
        if params is not None:
            if "classification" in params:
                classification = _uint_param(params, "classification", "Unable to set 'classification'")
            if "shared_memory_region" in params:
                region, offset, size = _shm_reference(params)
                if shm is None:
                    raise TritiumError.not_found(f"Unable to find shared memory region: '{region}'")
                shm.read(region, offset, size)  # validates the region and range now, as Triton does
                plan.shm[name] = (region, offset, size)
            elif "binary_data" in params:
                plan.binary[name] = _bool_param(params, "binary_data", "Unable to parse 'binary_data'")
            else:
                plan.binary[name] = False
            for key, value in params.items():
                if key not in _OUTPUT_FRONTEND_PARAMS and type(value) in (str, int, float, bool):
                    extra[key] = value
        else:
            plan.binary[name] = False
        request.requested_outputs.append(RequestedOutput(name, classification, extra))


def decode_request(
    body: bytes | bytearray | memoryview,
    header_length: int,
    model: str,
    version: str,
    *,
    max_input_size: int,
    shm: SharedMemoryRegistry | None = None,
) -> tuple[InferenceRequest, OutputPlan]:
    """Decode a JSON (+ binary tail) inference request; ``header_length`` > 0 is the JSON's length."""
    if header_length > max_input_size:
        raise invalid(
            f"request JSON size of {header_length} bytes exceeds the maximum allowed input size of "
            f"{max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )
    doc = js.parse(body if header_length == len(body) else memoryview(body)[:header_length])
    decoded = _decode_common(doc, body, header_length, model, version, max_input_size)
    if decoded is not None:
        return decoded
    return _decode_checked(doc, memoryview(body), header_length, model, version, max_input_size, shm)


# ----------------------------------------------------------------------------- the common case, fast
_FastType = tuple[DataType, "np.dtype[Any]", int, str]
_FAST_TYPES: dict[str, _FastType] = {
    dt.value: (
        dt,
        dt.numpy_dtype,
        dt.itemsize,
        "b" if dt is DataType.BOOL else "i" if dt.value.startswith("INT") else "iu" if dt.value[0] == "U" else "iuf",
    )
    for dt in DataType
    if dt not in (DataType.BYTES, DataType.BF16)
}
"""Wire datatypes the fast path decodes: (datatype, numpy dtype, item size, array kinds JSON data may
parse to). FP16 is binary only (JSON FP16 is an error, left to the checked path)."""
_BOOL_DTYPE = np.dtype(np.bool_)
_UINT8 = np.dtype(np.uint8)
_FP16 = DataType.FP16
_INPUT_KEYS = frozenset({"name", "datatype", "shape", "data"})
_BINARY_INPUT_KEYS = frozenset({"name", "datatype", "shape", "parameters"})
_I64_MAX = INT64_MAX
_ABSENT: Any = object()


def _decode_common(
    doc: Any, body: bytes | bytearray | memoryview, header_length: int, model: str, version: str, max_input_size: int
) -> tuple[InferenceRequest, OutputPlan] | None:
    """The request as :func:`_decode_checked` would decode it, or None when it is not the common case.

    The common case is what clients send: fixed-size tensors as JSON ``data`` or binary (``binary_data_size``
    the only input parameter), an optional string ``id``, ``binary_data_output`` the only request parameter,
    requested outputs with at most ``binary_data``. Anything else, and anything that would be an error, is
    left to the checked path (which reports Triton's exact message), so the two agree on every request
    this one accepts (a property test holds them to it).
    """
    if type(doc) is not dict:
        return None
    request_id = doc.get("id", "")
    if type(request_id) is not str:
        return None
    default_binary = False
    params = doc.get("parameters", _ABSENT)
    if params is not _ABSENT:
        if type(params) is not dict:
            return None
        for key, value in params.items():
            if key != "binary_data_output" or type(value) is not bool:
                return None
            default_binary = value
    tensors = doc.get("inputs")
    if type(tensors) is not list:
        return None
    inputs: dict[str, Tensor] = {}
    offset = header_length
    end = len(body)
    for tensor in tensors:
        if type(tensor) is not dict:
            return None
        name = tensor.get("name")
        datatype_name = tensor.get("datatype")
        shape = tensor.get("shape")
        if type(name) is not str or type(datatype_name) is not str or type(shape) is not list or name in inputs:
            return None
        fast = _FAST_TYPES.get(datatype_name)
        if fast is None:
            return None
        count = 1
        for dim in shape:
            if type(dim) is not int or dim < 0 or dim > _I64_MAX:
                return None
            count *= dim
        if count == 0 or count > _I64_MAX:
            return None
        datatype, dtype, itemsize, kinds = fast
        keys = tensor.keys()
        if keys <= _INPUT_KEYS and "data" in tensor:
            data = tensor["data"]
            if (
                type(data) is not list
                or not shape  # Triton counts no elements in a JSON scalar: the checked path's zeros
                or datatype is _FP16
                or count > _I64_MAX // itemsize
                or count * itemsize > max_input_size
            ):
                return None
            try:
                array = np.array(data)
            except (ValueError, TypeError, OverflowError):
                return None
            if array.size != count or array.dtype.kind not in kinds:
                return None
            if kinds == "iu" and array.dtype.kind == "i" and int(array.min()) < 0:
                return None
            if out_of_range(array, datatype, data if array.ndim == 1 else None) is not None:
                return None
            array = array.astype(dtype, copy=False)
            array.shape = shape  # a fresh array of ``count`` elements: no view object needed
        elif keys <= _BINARY_INPUT_KEYS and "parameters" in tensor:
            input_params = tensor["parameters"]
            if type(input_params) is not dict or len(input_params) != 1:
                return None
            size = input_params.get("binary_data_size")
            if type(size) is not int or size != count * itemsize or size > end - offset:
                return None
            if dtype is _BOOL_DTYPE:
                array = np.frombuffer(body, _UINT8, count, offset).astype(_BOOL_DTYPE)
            else:
                array = np.frombuffer(body, dtype, count, offset)
                if not array.flags.aligned:
                    array = array.copy()
            array.shape = shape
            offset += size
        else:
            return None
        inputs[name] = Tensor(name, datatype, array)
    if offset != end:
        return None
    plan = OutputPlan(default_binary=default_binary)
    requested: list[RequestedOutput] = []
    outputs = doc.get("outputs", _ABSENT)
    if outputs is not _ABSENT:
        if type(outputs) is not list:
            return None
        binary = plan.binary
        for output in outputs:
            if type(output) is not dict:
                return None
            name = output.get("name")
            if type(name) is not str or name in binary:
                return None
            wants_binary = False
            output_params = output.get("parameters")
            if output_params is not None:
                if type(output_params) is not dict:
                    return None
                for key, value in output_params.items():
                    if key != "binary_data" or type(value) is not bool:
                        return None
                    wants_binary = value
            binary[name] = wants_binary
            requested.append(RequestedOutput(name, 0, {}))
    request = InferenceRequest(
        model_name=model,
        inputs=inputs,
        model_version=int(version) if version else -1,
        id=request_id,
        requested_outputs=requested,
    )
    return request, plan


# --------------------------------------------------------------------------- every case, with checks
def _decode_checked(
    doc: Any,
    view: memoryview,
    header_length: int,
    model: str,
    version: str,
    max_input_size: int,
    shm: SharedMemoryRegistry | None,
) -> tuple[InferenceRequest, OutputPlan]:
    """Decode any request with Triton's checks, in its order, and its error messages."""
    request = InferenceRequest(model_name=model, inputs={}, model_version=parse_version(version))
    plan = OutputPlan()
    is_object = type(doc) is dict
    if is_object and "id" in doc:
        try:
            request.id = js.as_str(doc["id"])
        except TritiumError as exc:
            raise with_prefix("Unable to parse 'id'", exc) from None
    if is_object and "parameters" in doc:
        _apply_parameters(doc, request, plan)
    try:
        inputs = js.member_list(doc, "inputs")
    except TritiumError as exc:
        raise with_prefix("Unable to parse 'inputs'", exc) from None
    offset = header_length
    for tensor in inputs:
        if type(tensor) is not dict:
            tensor = {}
        params = tensor.get("parameters")
        _validate_input_content(tensor, params if type(params) is dict else None)
        name = _member_str(tensor, "name")
        datatype_name = _member_str(tensor, "datatype")
        shape = _parse_shape(tensor)
        if name in request.inputs:
            raise invalid(f"{request_prefix(request.id)}input '{name}' already exists in request")
        datatype = _DATATYPES.get(datatype_name)
        array, offset = _decode_input(
            tensor, name, datatype, shape, view, offset, model, request.id, max_input_size, shm
        )
        assert datatype is not None
        request.inputs[name] = _tensor(name, datatype, array)
    if offset != len(view):
        raise invalid(f"unexpected additional input data for model '{model}'")
    if is_object and "outputs" in doc:
        try:
            outputs = js.as_list(doc["outputs"])
        except TritiumError as exc:
            raise with_prefix("Unable to parse 'outputs'", exc) from None
        _parse_outputs(outputs, request, plan, shm)
    return request, plan


def _tensor(name: str, datatype: DataType, array: np.ndarray[Any, Any]) -> Tensor:
    return Tensor(name, datatype, array)


def decode_raw_request(
    body: bytes | bytearray | memoryview,
    model: str,
    version: str,
    spec: RawInputSpec,
    *,
    max_input_size: int,
) -> tuple[InferenceRequest, OutputPlan]:
    """Decode a raw binary request (header length 0): the body is the model's single input, batch 1."""
    if len(body) > max_input_size:
        raise invalid(
            f"Raw input has a byte_size ({len(body)} bytes) that exceeds the maximum allowed value of "
            f"{max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )
    prefix = request_prefix("")
    if len(spec.inputs) != 1:
        raise invalid(
            f"{prefix}Raw request must only have 1 input (found 1) to be deduced but got {len(spec.inputs)} "
            f"inputs in '{model}' model configuration"
        )
    name, datatype, config_dims = spec.inputs[0]
    shape: list[int] = [1] if spec.max_batch_size != 0 else []
    dynamic_axis = -1
    count = 1
    for dim in config_dims:
        if dim == -1:
            if dynamic_axis != -1:
                raise invalid(
                    f"{prefix}The shape of the raw input '{name}' can not be deduced because there are more "
                    "than one variable-sized dimension"
                )
            dynamic_axis = len(shape)
        else:
            count *= dim
        shape.append(dim)
    view = memoryview(body)
    if datatype is DataType.BYTES:
        if dynamic_axis != -1 or count != 1:
            raise invalid(f"{prefix}For BYTE datatype raw input '{name}', the model must have input shape [1]")
        array = bytes_array([bytes(view)], tuple(shape), name, model, "")
    else:
        if dynamic_axis != -1:
            shape[dynamic_axis] = len(view) // count // datatype.itemsize if count else 0
        array = binary_to_array(datatype, tuple(shape), view, name, model, "")
    request = InferenceRequest(
        model_name=model, inputs={name: _tensor(name, datatype, array)}, model_version=parse_version(version)
    )
    return request, OutputPlan(default_binary=True)


def forward_headers(request: InferenceRequest, headers: Iterable[tuple[str, str]], pattern: Any) -> None:
    """``--http-header-forward-pattern``: matching headers become string request parameters."""
    for key, value in headers:
        if pattern.search(key) is None:
            continue
        if protocol.is_reserved_parameter(key):
            raise invalid(f"Header '{key}' is reserved for Triton usage and cannot be forwarded.")
        request.parameters[key] = value


# ------------------------------------------------------------------------------------------ responses
def encode_response(
    response: InferenceResponse, plan: OutputPlan, shm: SharedMemoryRegistry | None = None
) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary outputs, the JSON header's length."""
    doc: dict[str, Any] = {}
    if response.id:
        doc["id"] = response.id
    doc["model_name"] = response.model_name
    doc["model_version"] = str(response.model_version)
    if response.parameters:
        doc["parameters"] = response.parameters
    outputs: list[dict[str, Any]] = []
    buffers: list[bytes | memoryview] = []
    default_binary = plan.default_binary
    binary_plan = plan.binary
    shm_plan = plan.shm
    for tensor in response.outputs:
        name = tensor.name
        datatype = tensor.datatype
        array = tensor.data
        wire, dtype = _OUT_TYPES[datatype._value_]
        entry: dict[str, Any] = {"name": name, "datatype": wire, "shape": list(array.shape)}
        if shm_plan and name in shm_plan:
            _write_shm(array, datatype, name, shm_plan[name], shm)
        elif binary_plan.get(name, default_binary):
            if dtype is not None and array.dtype == dtype and array.size and array.ndim and array.flags.c_contiguous:
                buffer: bytes | memoryview = array.data.cast("B")
            else:
                buffer = codec.encode_tensor(array, datatype)
            entry["parameters"] = {"binary_data_size": len(buffer)}
            if len(buffer):
                buffers.append(buffer)
        elif dtype is not None and array.dtype == dtype and array.flags.c_contiguous:
            entry["data"] = array.reshape(-1)
        else:
            entry["data"] = array_to_json(array, datatype, name)
        outputs.append(entry)
    doc["outputs"] = outputs
    header = js.dumps(doc, option=js.OPT_NUMPY)
    if not buffers:
        return header, None
    return b"".join([header, *buffers]), len(header)


_OUT_TYPES: dict[str, tuple[str, np.dtype[Any] | None]] = {
    dt.value: (
        dt.value,
        None
        if dt in (DataType.BYTES, DataType.BF16, DataType.FP16) or dt.numpy_dtype.byteorder == ">"
        else dt.numpy_dtype,
    )
    for dt in DataType
}
"""Per wire datatype of an output: its name, and the numpy dtype whose native, C-contiguous arrays go out
as they are (a byte view in binary, the array itself for orjson); None where the general encoders decide."""


def _write_shm(
    array: np.ndarray[Any, Any],
    datatype: DataType,
    name: str,
    target: tuple[str, int, int],
    shm: SharedMemoryRegistry | None,
) -> None:
    region, offset, size = target
    buffer = codec.encode_tensor(array, datatype)
    if len(buffer) > size:
        raise malformed(
            f"shared memory size specified with the request for output '{name}' ({size} bytes) should be at "
            f"least {len(buffer)} bytes to hold the results"
        )
    if shm is None:
        raise TritiumError.not_found(f"Unable to find shared memory region: '{region}'")
    shm.write(region, offset, buffer, size)
