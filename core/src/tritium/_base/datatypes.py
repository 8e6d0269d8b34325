"""Triton's tensor datatypes and their numpy representation.

Wire names (``"FP32"``) are what KServe v2 carries; config names (``"TYPE_FP32"``) are what
``config.pbtxt`` carries. BYTES tensors are numpy object arrays of ``bytes``; BF16 tensors use
``ml_dtypes.bfloat16`` so that they keep their exact bits.
"""

from __future__ import annotations

import enum
from typing import Any

import ml_dtypes
import numpy as np


class DataType(enum.Enum):
    """A Triton datatype, named by its wire string."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"
    BF16 = "BF16"

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        """The numpy dtype that holds one element (object for BYTES)."""
        return _NUMPY[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element in the binary wire format; 0 for BYTES (variable length)."""
        return 0 if self is DataType.BYTES else _NUMPY[self].itemsize

    @property
    def config_name(self) -> str:
        """The ``DataType`` enum name used in model configurations (BYTES is ``TYPE_STRING``)."""
        return "TYPE_STRING" if self is DataType.BYTES else f"TYPE_{self.value}"

    @classmethod
    def from_wire(cls, name: str) -> DataType:
        """Parse a wire datatype string; raises ValueError for unknown names."""
        return cls(name)

    @classmethod
    def from_config_name(cls, name: str) -> DataType:
        """Parse a config enum name such as ``TYPE_FP32``; raises ValueError for TYPE_INVALID/unknown."""
        if name == "TYPE_STRING":
            return cls.BYTES
        if not name.startswith("TYPE_"):
            raise ValueError(f"unknown data type {name!r}")
        return cls(name[5:])

    @classmethod
    def from_config_enum(cls, number: int) -> DataType:
        """The datatype of a ``ModelConfig`` ``DataType`` enum number (1 = TYPE_BOOL ... 14 = TYPE_BF16)."""
        if 1 <= number < len(_BY_CONFIG_NUMBER):
            return _BY_CONFIG_NUMBER[number]
        raise ValueError(f"invalid data type enum value {number}")

    @property
    def config_enum(self) -> int:
        """The ``ModelConfig`` ``DataType`` enum number of this datatype."""
        return _BY_CONFIG_NUMBER.index(self, 1)

    @classmethod
    def from_numpy(cls, dtype: np.dtype[Any]) -> DataType:
        """The datatype of a numpy dtype (object, bytes and str map to BYTES)."""
        dtype = np.dtype(dtype)
        if dtype.kind in ("O", "S", "U"):
            return cls.BYTES
        try:
            return _FROM_NUMPY[dtype]
        except KeyError:
            raise ValueError(f"no Triton datatype for numpy dtype {dtype}") from None


_NUMPY: dict[DataType, np.dtype[Any]] = {
    DataType.BOOL: np.dtype(np.bool_),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.INT8: np.dtype(np.int8),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.FP16: np.dtype(np.float16),
    DataType.FP32: np.dtype(np.float32),
    DataType.FP64: np.dtype(np.float64),
    DataType.BYTES: np.dtype(object),
    DataType.BF16: np.dtype(ml_dtypes.bfloat16),
}
_FROM_NUMPY: dict[np.dtype[Any], DataType] = {v: k for k, v in _NUMPY.items() if k is not DataType.BYTES}
# Index = ModelConfig DataType enum number (0 is TYPE_INVALID).
_BY_CONFIG_NUMBER: tuple[DataType, ...] = (
    DataType.BOOL,  # placeholder for TYPE_INVALID, never returned
    DataType.BOOL,
    DataType.UINT8,
    DataType.UINT16,
    DataType.UINT32,
    DataType.UINT64,
    DataType.INT8,
    DataType.INT16,
    DataType.INT32,
    DataType.INT64,
    DataType.FP16,
    DataType.FP32,
    DataType.FP64,
    DataType.BYTES,
    DataType.BF16,
)
