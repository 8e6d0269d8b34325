"""Tensor data between the HTTP wire and numpy: JSON ``data`` arrays and binary tensor bytes.

JSON ``data`` may be flat or nested (any nesting; only the element count must match the shape, as in
Triton). Regular numeric data goes through one ``np.array`` call; anything else (ragged nesting, wrong
element types) is walked element by element to report exactly what Triton reports. Binary data becomes a
numpy view of the received bytes where the alignment allows (see :mod:`tritium.codec`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritium import DataType, TritiumError, codec
from tritium_frontend_http._errors import invalid, malformed, request_prefix, with_prefix
from tritium_frontend_http._jsonio import (
    MAX_NESTING,
    NESTING_MESSAGE,
    NOT_BOOL,
    NOT_INT,
    NOT_NUMBER,
    NOT_STRING,
    NOT_UINT,
)

INT64_MAX = (1 << 63) - 1
_U64 = 1 << 64
_I63 = 1 << 63

TOO_MANY = "Unable to parse 'data': Shape does not match true shape of 'data' field"
TOO_FEW = "Failed to parse 'data' field: shape does not match true shape"

_SIGNED = frozenset({DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64})
_UNSIGNED = frozenset({DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64})
_FLOAT = frozenset({DataType.FP32, DataType.FP64})


def shape_to_string(shape: list[int] | tuple[int, ...]) -> str:
    """Triton's ``ShapeToString``: ``[1,16]``."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def as_int64_dims(shape: list[int]) -> list[int]:
    """Shape values read as uint64 and stored as int64, as Triton does (huge dims become negative)."""
    return [d - _U64 if d > INT64_MAX else d for d in shape]


def json_element_count(shape: list[int], name: str) -> int:
    """Triton's ``GetElementCount`` for a JSON input: 0 for an empty shape or a 0 dim; INVALID_ARG for
    negative dims or an element count past INT64_MAX."""
    count = 0
    first = True
    for dim in shape:
        if dim < 0:
            raise invalid(
                f"invalid shape for input '{name}': shape {shape_to_string(shape)} contains one or more "
                "invalid dimensions"
            )
        if dim == 0:
            return 0
        if first:
            count = dim
            first = False
        else:
            if count > INT64_MAX // dim:
                raise invalid(
                    f"invalid shape for input '{name}': shape {shape_to_string(shape)} causes total element "
                    f"count to exceed maximum size of {INT64_MAX}"
                )
            count *= dim
    return count


# ------------------------------------------------------------------------------------- JSON -> numpy
def _check_bool(value: Any) -> Any:
    if type(value) is not bool:
        raise malformed(NOT_BOOL)
    return value


def _check_int(value: Any) -> Any:
    if type(value) is not int or not -_I63 <= value < _I63:
        raise malformed(NOT_INT)
    return value


def _check_uint(value: Any) -> Any:
    if type(value) is not int or not 0 <= value < _U64:
        raise malformed(NOT_UINT)
    return value


def _check_number(value: Any) -> Any:
    if type(value) not in (int, float):
        raise malformed(NOT_NUMBER)
    return value


def _walk(value: Any, depth: int, out: list[Any], check: Any, expected: int) -> None:
    if depth >= MAX_NESTING:
        raise invalid(NESTING_MESSAGE)
    if type(value) is list:
        for item in value:
            _walk(item, depth + 1, out, check, expected)
        return
    if len(out) >= expected:
        raise malformed("Shape does not match true shape of 'data' field")
    out.append(check(value))


def _walk_numeric(data: list[Any], datatype: DataType, expected: int) -> np.ndarray[Any, Any]:
    """Element-by-element read of JSON ``data`` with Triton's checks and messages."""
    if datatype is DataType.BOOL:
        check, holder = _check_bool, np.dtype(np.bool_)
    elif datatype in _SIGNED:
        check, holder = _check_int, np.dtype(np.int64)
    elif datatype in _UNSIGNED:
        check, holder = _check_uint, np.dtype(np.uint64)
    else:
        check, holder = _check_number, np.dtype(np.float64)
    out: list[Any] = []
    try:
        _walk(data, 0, out, check, expected)
    except RecursionError:
        raise invalid(f"Unable to parse 'data': {NESTING_MESSAGE}") from None
    except TritiumError as exc:
        raise with_prefix("Unable to parse 'data'", exc) from None
    if len(out) != expected:
        raise malformed(TOO_FEW)
    return np.array(out, dtype=holder)


def _fast_ok(array: np.ndarray[Any, Any], datatype: DataType) -> bool:
    kind = array.dtype.kind
    if datatype is DataType.BOOL:
        return kind == "b"
    if datatype in _SIGNED:
        return kind == "i"
    if datatype in _UNSIGNED:
        return kind == "u" or (kind == "i" and (array.size == 0 or int(array.min()) >= 0))
    return kind in "iuf"


def json_to_array(
    data: list[Any], datatype: DataType, shape: tuple[int, ...], name: str, count: int
) -> np.ndarray[Any, Any]:
    """Decode a numeric JSON ``data`` array of ``count`` elements into an array of ``shape``.

    FP16/BF16 are refused (binary only, as in Triton); ``count`` is the shape's element count (> 0).
    BYTES data goes through :func:`json_bytes_elements` and :func:`bytes_array` instead.
    """
    if datatype is DataType.FP16 or datatype is DataType.BF16:
        raise invalid(
            f"receiving {datatype.value} data via JSON is not supported. Please use the binary data format "
            f"for input {name}"
        )
    target = datatype.numpy_dtype
    array: np.ndarray[Any, Any] | None
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is None or not _fast_ok(array, datatype):
        array = _walk_numeric(data, datatype, count)
    elif array.size != count:
        if array.size > count:
            raise malformed(TOO_MANY)
        raise malformed(TOO_FEW)
    bad = out_of_range(array, datatype, data if array.ndim == 1 else None)
    if bad is not None:
        raise malformed(
            f"Unable to parse 'data': value {bad} is out of range for data-type '{datatype.value}' of input "
            f"'{name}'"
        )
    return array.reshape(shape).astype(target, copy=False)


def out_of_range(array: np.ndarray[Any, Any], datatype: DataType, values: list[Any] | None = None) -> Any:
    """The first JSON value that ``datatype`` cannot hold (None when all fit). ``values`` may be the flat
    JSON list ``array`` was made from: for the small arrays of most requests, Python's ``min``/``max`` over
    it cost a fraction of numpy's reductions.

    Triton casts JSON numbers to the input's type without a check, so ``2**40`` for an INT32 input silently
    becomes 0 and ``1e39`` for FP32 becomes infinity; Tritium refuses them instead (INVALID_ARG).
    """
    if array.dtype == datatype.numpy_dtype or array.size == 0:
        return None  # no conversion: every value is already held
    bounds = _INT_BOUNDS.get(datatype)
    if bounds is not None:
        if array.dtype.kind not in "iu":
            return None
        if values is not None and len(values) <= _SMALL:
            low, high = min(values), max(values)
        else:
            low, high = array.min().item(), array.max().item()
        if low < bounds[0]:
            return low
        if high > bounds[1]:
            return high
        return None
    if datatype is DataType.FP32 and array.dtype.kind == "f":
        if values is not None and len(values) <= _SMALL:
            for value in values:
                if _FP32_OVERFLOW <= abs(value) < _INF:
                    return value
            return None
        magnitude = np.abs(array)
        too_big = array[(magnitude >= _FP32_OVERFLOW) & np.isfinite(magnitude)]
        if too_big.size:
            return too_big[0].item()
    return None


_INT_BOUNDS: dict[DataType, tuple[int, int]] = {
    dt: (int(np.iinfo(dt.numpy_dtype).min), int(np.iinfo(dt.numpy_dtype).max)) for dt in _SIGNED | _UNSIGNED
}
_FP32_OVERFLOW = float(2**128 - 2**103)
"""The smallest magnitude that float32 rounds to infinity (halfway between its largest finite value and 2**128):
a JSON number below it, such as the ``3.4028235e+38`` that float32's largest value prints as, is held."""
_INF = float("inf")
_SMALL = 256

def json_bytes_elements(data: list[Any]) -> list[bytes]:
    """The strings of a JSON BYTES ``data`` array (any nesting), UTF-8 encoded.

    Triton's ``JsonBytesArrayByteSize`` errors: nesting past 100 (INVALID_ARG), a non-string (INTERNAL).
    """
    if all(type(item) is str for item in data):
        return [item.encode("utf-8", "surrogatepass") for item in data]
    out: list[bytes] = []

    def walk(value: Any, depth: int) -> None:
        if depth >= MAX_NESTING:
            raise invalid(NESTING_MESSAGE)
        if type(value) is list:
            for item in value:
                walk(item, depth + 1)
        elif type(value) is str:
            out.append(value.encode("utf-8", "surrogatepass"))
        else:
            raise malformed(f"Unable to parse JSON bytes array: {NOT_STRING}")

    try:
        walk(data, 0)
    except RecursionError:
        raise invalid(NESTING_MESSAGE) from None
    return out


def bytes_array(
    elements: list[bytes], shape: tuple[int, ...], name: str, model: str, request_id: str
) -> np.ndarray[Any, Any]:
    """An object array of ``shape`` from BYTES elements, with Triton core's element-count messages."""
    count = codec.element_count(shape)
    if len(elements) != count:
        prefix = request_prefix(request_id)
        if len(elements) > count:
            raise invalid(
                f"{prefix}unexpected number of string elements {count + 1} for inference input '{name}' "
                f"for model '{model}', expecting {count}"
            )
        raise invalid(
            f"{prefix}expected {count} string elements for inference input '{name}' for model '{model}', "
            f"got {len(elements)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array.reshape(shape)


def json_byte_size(datatype: DataType, count: int, elements: list[bytes] | None) -> int:
    """The wire size Triton computes for a JSON input (BYTES: 4-byte prefix + length per element)."""
    if datatype is DataType.BYTES:
        assert elements is not None
        return sum(len(e) for e in elements) + 4 * len(elements)
    return count * datatype.itemsize


# ---------------------------------------------------------------------------------- binary -> numpy
def binary_to_array(
    datatype: DataType,
    shape: tuple[int, ...],
    buffer: bytes | bytearray | memoryview,
    name: str,
    model: str,
    request_id: str,
) -> np.ndarray[Any, Any]:
    """Decode binary tensor bytes (a view of ``buffer`` when aligned) with Triton core's messages."""
    if datatype is DataType.BYTES:
        try:
            elements = codec.decode_bytes_elements(buffer, name)
        except TritiumError as exc:
            raise invalid(request_prefix(request_id) + exc.message) from None
        return bytes_array(elements, shape, name, model, request_id)
    expected = codec.element_count(shape) * datatype.itemsize
    if len(buffer) != expected:
        raise invalid(
            f"{request_prefix(request_id)}input byte size mismatch for input '{name}' for model '{model}'. "
            f"Expected {expected}, got {len(buffer)}"
        )
    return codec.decode_tensor(datatype, shape, buffer, name)


# ------------------------------------------------------------------------------------- numpy -> JSON
def array_to_json(array: np.ndarray[Any, Any], datatype: DataType, name: str) -> Any:
    """The flat row-major ``data`` of an output, ready for orjson (numpy arrays pass through)."""
    if datatype is DataType.BYTES:
        out = []
        for item in array.reshape(-1):
            if isinstance(item, (bytes, bytearray)):
                out.append(bytes(item).decode("utf-8", "replace"))
            else:
                out.append(str(item))
        return out
    if datatype is DataType.FP16 or datatype is DataType.BF16:
        raise invalid(
            f"sending {datatype.value} data via JSON is not supported. Please use the binary data format for output"
        )
    flat = array.reshape(-1)
    wanted = datatype.numpy_dtype
    if flat.dtype != wanted:
        flat = flat.astype(wanted)
    if not flat.flags.c_contiguous or flat.dtype.byteorder == ">":
        flat = np.ascontiguousarray(flat, dtype=wanted.newbyteorder("="))
    return flat
