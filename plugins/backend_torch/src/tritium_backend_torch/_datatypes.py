"""Triton datatypes and PyTorch tensors: which dtype each datatype is, and the copies between numpy and torch.

Triton's libtorch backend accepts BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32 and FP64 tensors and
STRING (BYTES) as a ``List[str]``. PyTorch also has bfloat16 and (since 2.3) uint16/uint32/uint64 tensors, so
this backend serves BF16, UINT16, UINT32 and UINT64 too (Triton refuses such configs; see the docs).
torch is imported only by the functions that need it.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from tritium import DataType, TritiumError

Array = np.ndarray[Any, Any]

TENSOR_TYPES: tuple[DataType, ...] = (
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
    DataType.BF16,
)
"""Datatypes carried by a ``torch.Tensor`` (BYTES travels as ``List[str]`` instead)."""

_TORCH_NAMES: dict[DataType, str] = {
    DataType.BOOL: "bool",
    DataType.UINT8: "uint8",
    DataType.UINT16: "uint16",
    DataType.UINT32: "uint32",
    DataType.UINT64: "uint64",
    DataType.INT8: "int8",
    DataType.INT16: "int16",
    DataType.INT32: "int32",
    DataType.INT64: "int64",
    DataType.FP16: "float16",
    DataType.FP32: "float32",
    DataType.FP64: "float64",
    DataType.BF16: "bfloat16",
}


def is_supported(datatype: DataType) -> bool:
    """Whether a config tensor of ``datatype`` can be served (every tensor type, and BYTES as strings)."""
    return datatype is DataType.BYTES or datatype in _TORCH_NAMES


def torch_dtype(datatype: DataType) -> Any:
    """The ``torch.dtype`` of a tensor datatype."""
    import torch

    return getattr(torch, _TORCH_NAMES[datatype])


_BY_TORCH_NAME: dict[str, DataType] = {name: datatype for datatype, name in _TORCH_NAMES.items()}


def datatype_of(dtype: Any) -> DataType | None:
    """The Triton datatype of a ``torch.dtype`` (or its name, e.g. ``"float32"``), None when Triton has none
    (complex, float8, ...)."""
    return _BY_TORCH_NAME.get(str(dtype).removeprefix("torch."))


def to_tensor(array: Array, device: Any) -> Any:
    """A tensor holding ``array`` on ``device``. Read-only arrays (views of received bytes) are copied, so a
    model that writes into its inputs never writes into a request's buffer; bfloat16 travels as its bits."""
    import torch

    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    if array.dtype == ml_dtypes.bfloat16:
        tensor = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    else:
        tensor = torch.from_numpy(array)
    if device.type != "cpu":
        tensor = tensor.to(device, non_blocking=True)
    return tensor


def to_numpy(tensor: Any) -> Array:
    """A host numpy array of a tensor's values (a copy off the device; bfloat16 as ``ml_dtypes.bfloat16``)."""
    import torch

    tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        bits: Array = tensor.contiguous().view(torch.int16).numpy()
        return bits.view(ml_dtypes.bfloat16)
    array: Array = tensor.numpy()
    return array


def decode_strings(array: Array, name: str) -> list[str]:
    """A BYTES tensor as the ``List[str]`` a TorchScript model takes; bytes that are not UTF-8 are the
    client's error."""
    values: list[str] = []
    for item in array.reshape(-1):
        try:
            values.append(item.decode("utf-8") if isinstance(item, bytes | bytearray) else str(item))
        except UnicodeDecodeError:
            raise TritiumError.invalid_arg(
                f"input '{name}' holds bytes that are not valid UTF-8; PyTorch models take strings"
            ) from None
    return values


def encode_strings(values: list[Any], name: str) -> Array:
    """A ``List[str]`` model output as a 1-D BYTES array."""
    out = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TritiumError.internal(f"output '{name}' must be of type Tensor or List[str].")
        out[index] = value.encode("utf-8")
    return out
