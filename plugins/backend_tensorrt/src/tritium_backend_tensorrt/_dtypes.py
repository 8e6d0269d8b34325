"""TensorRT data types and Tritium's, as Triton's TensorRT backend maps them.

TensorRT's Python enum ``tensorrt.DataType`` is read by member name, so this module imports no TensorRT.
Types Triton maps to ``TYPE_INVALID`` (FP8, INT4, FP4, ...) cannot be served: a model with such an I/O
tensor fails to load with a message naming the tensor.
"""

from __future__ import annotations

from typing import Any

from tritium import DataType

_BY_TRT_NAME = {
    "FLOAT": DataType.FP32,
    "HALF": DataType.FP16,
    "BF16": DataType.BF16,
    "INT8": DataType.INT8,
    "UINT8": DataType.UINT8,
    "INT32": DataType.INT32,
    "INT64": DataType.INT64,
    "BOOL": DataType.BOOL,
}


def trt_type_name(trt_dtype: Any) -> str:
    """The member name of a ``tensorrt.DataType`` value (``"FLOAT"``, ``"HALF"``, ...)."""
    name = getattr(trt_dtype, "name", None)
    return str(name) if name is not None else str(trt_dtype).rsplit(".", 1)[-1]


def datatype_of(trt_dtype: Any) -> DataType | None:
    """Tritium's datatype for a TensorRT one; None when Triton has no mapping (``TYPE_INVALID``)."""
    return _BY_TRT_NAME.get(trt_type_name(trt_dtype))
