"""The binary tensor encoding shared by every frontend.

KServe v2's binary tensor extension (HTTP) and ``raw_input_contents`` / ``raw_output_contents`` (gRPC) use
the same layout: little-endian, row-major, no padding; BOOL one byte; BYTES as a 4-byte little-endian length
followed by the raw bytes, per element. Decoding returns numpy views of the received buffer where the
alignment allows, so large inputs are not copied.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError

_LENGTH = struct.Struct("<I")


def element_count(shape: tuple[int, ...] | list[int]) -> int:
    """Number of elements of a shape (1 for a scalar shape)."""
    n = 1
    for d in shape:
        n *= d
    return n


def decode_bytes_elements(buffer: bytes | bytearray | memoryview, name: str) -> list[bytes]:
    """Split a length-prefixed BYTES buffer into its elements; raises INVALID_ARG on a truncated buffer."""
    view = memoryview(buffer)
    out: list[bytes] = []
    offset = 0
    end = len(view)
    while offset < end:
        if offset + 4 > end:
            raise TritiumError.invalid_arg(
                f"unexpected end of BYTES data for input '{name}': incomplete 4-byte length prefix"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise TritiumError.invalid_arg(
                f"unexpected end of BYTES data for input '{name}': element of {length} bytes "
                f"exceeds the {end - offset} bytes left"
            )
        out.append(bytes(view[offset : offset + length]))
        offset += length
    return out


def decode_tensor(
    datatype: DataType, shape: tuple[int, ...], buffer: bytes | bytearray | memoryview, name: str
) -> np.ndarray[Any, Any]:
    """Turn binary wire bytes into a numpy array of ``shape`` (a view of ``buffer`` where possible).

    Raises INVALID_ARG when the byte size does not match the shape and datatype.
    """
    count = element_count(shape)
    if datatype is DataType.BYTES:
        elements = decode_bytes_elements(buffer, name)
        if len(elements) != count:
            raise TritiumError.invalid_arg(
                f"unexpected number of string elements {len(elements)} for inference input '{name}', "
                f"expecting {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = datatype.numpy_dtype
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise TritiumError.invalid_arg(
            f"unexpected total byte size {len(buffer)} for input '{name}', expecting {expected}"
        )
    if datatype is DataType.BOOL:
        return np.frombuffer(buffer, dtype=np.uint8).astype(np.bool_).reshape(shape)
    array = np.frombuffer(buffer, dtype=dtype)
    if not array.flags.aligned:
        array = array.copy()
    return array.reshape(shape)


def encode_bytes_elements(array: np.ndarray[Any, Any]) -> bytes:
    """Length-prefix every element of a BYTES array (str elements are UTF-8 encoded)."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif not isinstance(item, (bytes, bytearray)):
            item = str(item).encode("utf-8")
        parts.append(_LENGTH.pack(len(item)))
        parts.append(bytes(item))
    return b"".join(parts)


def encode_tensor(array: np.ndarray[Any, Any], datatype: DataType) -> bytes | memoryview:
    """Binary wire bytes of ``array`` (a zero-copy view for contiguous numeric arrays)."""
    if datatype is DataType.BYTES:
        return encode_bytes_elements(array)
    wanted = datatype.numpy_dtype
    if array.dtype != wanted:
        array = array.astype(wanted)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if wanted.byteorder == ">":
        array = array.astype(wanted.newbyteorder("<"))
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def byte_size(array: np.ndarray[Any, Any], datatype: DataType) -> int:
    """Size of ``array`` in the binary wire format."""
    if datatype is DataType.BYTES:
        total = 0
        for item in array.reshape(-1):
            total += 4 + len(item.encode("utf-8") if isinstance(item, str) else item)
        return total
    return int(array.size) * datatype.itemsize
