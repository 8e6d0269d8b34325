"""ONNX Runtime element types and how tensors cross between Tritium and a session.

ONNX Runtime's Python API names tensor types as strings (``"tensor(float)"``); Tritium names them with
:class:`tritium.DataType`. Two types need care on the way through:

- strings: an ONNX string tensor holds Python ``str``, while Tritium's BYTES tensors hold ``bytes``. Feeding
  bytes would turn ``b"ab"`` into the text ``"b'ab'"``, so BYTES inputs are decoded as UTF-8 and string
  outputs encoded back; bytes that are not UTF-8 cannot pass through an ONNX string tensor at all.
- bfloat16: numpy has no bfloat16 of its own and ONNX Runtime refuses ``ml_dtypes.bfloat16`` arrays, so
  BF16 tensors travel as :class:`onnxruntime.OrtValue` built from the raw 16-bit words.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from tritium import DataType, TritiumError

ORT_TYPES: dict[str, DataType] = {
    "tensor(bool)": DataType.BOOL,
    "tensor(uint8)": DataType.UINT8,
    "tensor(uint16)": DataType.UINT16,
    "tensor(uint32)": DataType.UINT32,
    "tensor(uint64)": DataType.UINT64,
    "tensor(int8)": DataType.INT8,
    "tensor(int16)": DataType.INT16,
    "tensor(int32)": DataType.INT32,
    "tensor(int64)": DataType.INT64,
    "tensor(float16)": DataType.FP16,
    "tensor(float)": DataType.FP32,
    "tensor(double)": DataType.FP64,
    "tensor(string)": DataType.BYTES,
    "tensor(bfloat16)": DataType.BF16,
}
"""Every ONNX tensor element type Triton has a datatype for (float8, int4, complex... have none)."""

ONNX_BFLOAT16 = 16
"""``onnx.TensorProto.BFLOAT16``: the element type number ``OrtValue`` construction wants."""

_BF16 = np.dtype(ml_dtypes.bfloat16)


def datatype_of(ort_type: str) -> DataType | None:
    """The Tritium datatype of an ONNX Runtime type string, None when Triton has none for it."""
    return ORT_TYPES.get(ort_type)


def config_type_name(ort_type: str) -> str:
    """The model-config enum name (``TYPE_FP32``) of an ONNX Runtime type, ``TYPE_INVALID`` when none."""
    datatype = ORT_TYPES.get(ort_type)
    return datatype.config_name if datatype is not None else "TYPE_INVALID"


def encode_strings(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """An object array of UTF-8 ``bytes`` from an ONNX Runtime string output (an object array of ``str``)."""
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        flat[i] = item.encode("utf-8") if isinstance(item, str) else bytes(item)
    return out


def decode_strings(array: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """An object array of ``str`` for ONNX Runtime from a BYTES input (``bytes`` elements, ``str`` kept).

    Raises INVALID_ARG naming the input and the element when an element is not valid UTF-8.
    """
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        if isinstance(item, str):
            flat[i] = item
            continue
        try:
            flat[i] = bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TritiumError.invalid_arg(
                f"input '{name}' element {i} is not valid UTF-8 ({exc.reason} at byte {exc.start}): "
                "ONNX string tensors hold text, so BYTES inputs of an ONNX model must be UTF-8"
            ) from None
    return out


def bf16_to_ortvalue(array: np.ndarray[Any, Any]) -> Any:
    """An ``OrtValue`` of element type bfloat16 holding the same 16-bit words as ``array``."""
    import onnxruntime as ort

    words = np.ascontiguousarray(array).view(np.uint16)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(words, onnx_element_type=ONNX_BFLOAT16)


def ortvalue_to_bf16(value: Any) -> np.ndarray[Any, Any]:
    """A numpy ``ml_dtypes.bfloat16`` copy of a CPU bfloat16 ``OrtValue`` (which has no numpy view)."""
    import ctypes

    shape = tuple(value.shape())
    nbytes = int(value.tensor_size_in_bytes())
    if nbytes == 0:
        return np.zeros(shape, dtype=_BF16)
    raw = (ctypes.c_char * nbytes).from_address(value.data_ptr())
    return np.frombuffer(bytes(raw), dtype=_BF16).reshape(shape)
