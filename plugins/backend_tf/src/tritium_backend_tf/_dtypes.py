"""TensorFlow element types and the Triton datatypes they map to.

TensorFlow names element types with the ``tensorflow.DataType`` enum of ``types.proto`` (``DT_FLOAT`` = 1,
...). The numbers are stable wire values, so this module needs no TensorFlow import: the SavedModel reader
gets them straight from ``saved_model.pb``. The mapping is the one Triton's TensorFlow backend has: every
integer, float and bool type, and ``DT_STRING`` as BYTES. TensorFlow's other types (bfloat16, complex,
quantized, resource, variant, float8, int4) have no Triton datatype, and a model using them in its signature
cannot be served.
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium import DataType

TF_TYPE_NAMES: Mapping[int, str] = {
    0: "DT_INVALID",
    1: "DT_FLOAT",
    2: "DT_DOUBLE",
    3: "DT_INT32",
    4: "DT_UINT8",
    5: "DT_INT16",
    6: "DT_INT8",
    7: "DT_STRING",
    8: "DT_COMPLEX64",
    9: "DT_INT64",
    10: "DT_BOOL",
    11: "DT_QINT8",
    12: "DT_QUINT8",
    13: "DT_QINT32",
    14: "DT_BFLOAT16",
    15: "DT_QINT16",
    16: "DT_QUINT16",
    17: "DT_UINT16",
    18: "DT_COMPLEX128",
    19: "DT_HALF",
    20: "DT_RESOURCE",
    21: "DT_VARIANT",
    22: "DT_UINT32",
    23: "DT_UINT64",
}
"""``types.proto`` enum numbers and names (the first 24; later ones are float8 and int4 variants)."""

TF_TO_TRITON: Mapping[int, DataType] = {
    10: DataType.BOOL,
    4: DataType.UINT8,
    17: DataType.UINT16,
    22: DataType.UINT32,
    23: DataType.UINT64,
    6: DataType.INT8,
    5: DataType.INT16,
    3: DataType.INT32,
    9: DataType.INT64,
    19: DataType.FP16,
    1: DataType.FP32,
    2: DataType.FP64,
    7: DataType.BYTES,
}
"""Every TensorFlow type Triton's TensorFlow backend serves, and its datatype."""

TRITON_TO_TF: Mapping[DataType, int] = {datatype: number for number, datatype in TF_TO_TRITON.items()}


def tf_type_name(number: int) -> str:
    """``DT_FLOAT`` for 1; ``DT_<number>`` for a number this table does not name."""
    return TF_TYPE_NAMES.get(number, f"DT_{number}")


def datatype_of(number: int) -> DataType | None:
    """The Triton datatype of a TensorFlow type number, None when Triton has none for it."""
    return TF_TO_TRITON.get(number)


def config_type_name(number: int) -> str:
    """The model-config enum name (``TYPE_FP32``) of a TensorFlow type number, ``TYPE_INVALID`` when none."""
    datatype = TF_TO_TRITON.get(number)
    return datatype.config_name if datatype is not None else "TYPE_INVALID"
