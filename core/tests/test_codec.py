"""The binary tensor codec shared by every frontend."""

from __future__ import annotations

import struct

import hypothesis.extra.numpy as hnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritium import DataType, StatusCode, TritiumError, codec

NUMERIC = [d for d in DataType if d is not DataType.BYTES]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def numeric_arrays(draw: st.DrawFn) -> tuple[DataType, np.ndarray]:
    datatype = draw(st.sampled_from(NUMERIC))
    shape = draw(shapes)
    if datatype is DataType.BF16:
        raw = draw(hnp.arrays(np.uint16, shape))
        return datatype, raw.view(ml_dtypes.bfloat16)
    return datatype, draw(hnp.arrays(datatype.numpy_dtype, shape))


@given(numeric_arrays())
def test_numeric_round_trip_is_bit_exact(case: tuple[DataType, np.ndarray]) -> None:
    datatype, array = case
    encoded = bytes(codec.encode_tensor(array, datatype))
    assert len(encoded) == array.size * datatype.itemsize == codec.byte_size(array, datatype)
    decoded = codec.decode_tensor(datatype, array.shape, encoded, "x")
    assert decoded.dtype == datatype.numpy_dtype
    assert decoded.shape == array.shape
    assert decoded.tobytes() == np.ascontiguousarray(array).tobytes()


@given(st.lists(st.binary(max_size=20), max_size=12))
def test_bytes_round_trip(items: list[bytes]) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    encoded = bytes(codec.encode_tensor(array, DataType.BYTES))
    assert encoded == b"".join(struct.pack("<I", len(i)) + i for i in items)
    decoded = codec.decode_tensor(DataType.BYTES, (len(items),), encoded, "s")
    assert list(decoded) == items


@given(st.binary(max_size=64), st.integers(0, 6))
def test_any_bytes_decode_or_fail_cleanly(data: bytes, count: int) -> None:
    for datatype in (DataType.BYTES, DataType.INT32, DataType.BOOL, DataType.FP16):
        try:
            codec.decode_tensor(datatype, (count,), data, "in")
        except TritiumError as exc:
            assert exc.code is StatusCode.INVALID_ARG


def test_decoding_is_zero_copy_for_aligned_buffers() -> None:
    buffer = bytearray(np.arange(16, dtype=np.int32).tobytes())
    array = codec.decode_tensor(DataType.INT32, (16,), buffer, "in")
    buffer[0:4] = struct.pack("<i", 99)
    assert array[0] == 99


def test_wrong_size_names_the_input() -> None:
    with pytest.raises(TritiumError, match="unexpected total byte size 60 for input 'INPUT0', expecting 64"):
        codec.decode_tensor(DataType.INT32, (16,), b"\0" * 60, "INPUT0")


def test_truncated_bytes_element() -> None:
    with pytest.raises(TritiumError, match="input 'S'"):
        codec.decode_tensor(DataType.BYTES, (1,), struct.pack("<I", 10) + b"abc", "S")


def test_bool_is_one_byte_per_element() -> None:
    array = np.array([True, False, True])
    assert bytes(codec.encode_tensor(array, DataType.BOOL)) == b"\x01\x00\x01"
    assert codec.decode_tensor(DataType.BOOL, (3,), b"\x01\x00\x02", "b").tolist() == [True, False, True]


@pytest.mark.parametrize("datatype", list(DataType))
def test_config_names_round_trip(datatype: DataType) -> None:
    assert DataType.from_config_name(datatype.config_name) is datatype
    assert DataType.from_config_enum(datatype.config_enum) is datatype
    if datatype is not DataType.BYTES:
        assert DataType.from_numpy(datatype.numpy_dtype) is datatype
