"""Property tests of ``pb_utils`` tensor conversions: every Triton datatype, BYTES, empty and large tensors,
through ``pb_utils.Tensor`` and through the stub channel's shared memory and back, bit for bit."""

from __future__ import annotations

from collections.abc import Iterator

import ml_dtypes
import numpy as np
import pytest
import triton_python_backend_utils as pb_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritium_backend_python._channel import Channel, connected_channels
from tritium_backend_python._convert import outputs_from_wire, wire_tensor
from tritium_backend_python._runner import tensor_from_wire, tensor_to_wire

from tritium import DataType

NUMBERS = {
    "BOOL": 1, "UINT8": 2, "UINT16": 3, "UINT32": 4, "UINT64": 5, "INT8": 6, "INT16": 7, "INT32": 8,
    "INT64": 9, "FP16": 10, "FP32": 11, "FP64": 12, "BYTES": 13, "BF16": 14,
}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)


def arrays_of(wire: str) -> st.SearchStrategy[np.ndarray]:
    datatype = DataType(wire)
    if datatype is DataType.BYTES:
        return SHAPES.flatmap(
            lambda shape: st.lists(st.binary(max_size=12), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
            .map(lambda items, shape=shape: _object_array(items, shape))
        )
    if datatype is DataType.BF16:
        return hnp.arrays(np.uint16, SHAPES).map(lambda a: a.view(ml_dtypes.bfloat16))
    return hnp.arrays(datatype.numpy_dtype, SHAPES)


def _object_array(items: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and content (bit for bit: NaNs and signed zeros included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype == object:
        return a.reshape(-1).tolist() == b.reshape(-1).tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.fixture
def channel_pair() -> Iterator[tuple[Channel, Channel]]:
    """(server end, stub end) of a real channel, as the backend sets them up."""
    server, stub = connected_channels()
    yield server, stub
    server.close()
    stub.close()


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("wire", list(NUMBERS))
@SETTINGS
@given(data=st.data())
def test_tensor_keeps_array_and_datatype(wire, data):
    array = data.draw(arrays_of(wire))
    tensor = pb_utils.Tensor("T", array)
    assert tensor.name() == "T"
    assert tensor.triton_dtype() == NUMBERS[wire]
    assert tensor.shape() == list(array.shape)
    assert tensor.is_cpu()
    assert same(tensor.as_numpy(), array)
    assert pb_utils.numpy_to_triton_type(array.dtype) == NUMBERS[wire]
    assert np.dtype(pb_utils.triton_to_numpy_type(NUMBERS[wire])) == array.dtype
    config_name = "TYPE_STRING" if wire == "BYTES" else f"TYPE_{wire}"
    assert np.dtype(pb_utils.triton_string_to_numpy(config_name)) == array.dtype


@pytest.mark.parametrize("wire", list(NUMBERS))
@SETTINGS
@given(data=st.data())
def test_round_trip_through_the_stub_channel(wire, data, channel_pair):
    """Server -> stub (inputs) and stub -> server (outputs), as the backend converts them."""
    server, stub = channel_pair
    array = data.draw(arrays_of(wire))
    datatype = DataType(wire)
    server.reset_arena()
    server.send(("execute", [wire_tensor("IN", datatype, array)]))
    _, received = stub.receive("control", route=lambda m: "control")
    tensor = tensor_from_wire(*received[0])
    assert tensor.triton_dtype() == NUMBERS[wire]
    assert same(tensor.as_numpy(), array)
    stub.reset_arena()
    stub.send(("result", [tensor_to_wire(pb_utils.Tensor("OUT", tensor.as_numpy()))]))
    _, outputs = server.receive()
    back = outputs_from_wire(outputs)["OUT"]
    assert same(back, array)


@SETTINGS
@given(items=st.lists(st.one_of(st.binary(max_size=20), st.text(max_size=10)), max_size=30))
def test_bytes_elements_serialize_like_triton(items):
    array = np.empty(len(items), dtype=object)
    array[:] = items
    expected = [x if isinstance(x, bytes) else x.encode("utf-8") for x in items]
    serialized = pb_utils.serialize_byte_tensor(array)
    assert pb_utils.deserialize_bytes_tensor(serialized).tolist() == expected
    _name, wire, converted = pb_utils._tensor_to_wire(pb_utils.Tensor("S", array))
    assert wire == "BYTES" and converted.tolist() == expected


def test_truncated_bytes_are_refused():
    with pytest.raises(pb_utils.TritonModelException, match="truncated"):
        pb_utils.deserialize_bytes_tensor(b"\x05\x00\x00\x00abc")
    with pytest.raises(pb_utils.TritonModelException, match="truncated"):
        pb_utils.deserialize_bytes_tensor(b"\x05\x00")


def test_unicode_arrays_are_refused_as_triton_does():
    with pytest.raises(pb_utils.TritonModelException, match=r"np\.object_"):
        pb_utils.Tensor("S", np.array(["a", "b"]))


def test_numpy_bytes_arrays_become_bytes_tensors():
    tensor = pb_utils.Tensor("S", np.array([b"ab", b"c"], dtype=np.bytes_))
    assert tensor.triton_dtype() == 13
    assert tensor.as_numpy().tolist() == [b"ab", b"c"]


def test_large_tensors_cross_through_shared_memory(channel_pair):
    """Tensors far above the arena's first size make it grow; several in one message; each side's arena is
    reused after a reset; what the server receives is its own copy."""
    server, stub = channel_pair
    rng = np.random.default_rng(0)
    for size in (3 << 20, 40 << 20, 1 << 20):
        big = rng.integers(0, 255, size=size, dtype=np.uint8)
        other = rng.standard_normal(size // 8).astype(np.float64)
        server.reset_arena()
        server.send(("execute", [wire_tensor("A", DataType.UINT8, big), wire_tensor("B", DataType.FP64, other)]))
        _, received = stub.receive("control", route=lambda m: "control")
        assert not received[0][2].flags.writeable  # the stub sees read-only views of the server's arena
        assert same(received[0][2], big) and same(received[1][2], other)
        stub.reset_arena()
        stub.send(("result", [("Y", "UINT8", received[0][2])]))
        _, outputs = server.receive()
        result = outputs_from_wire(outputs)["Y"]
        stub.reset_arena()
        stub.send(("result", [("Y", "UINT8", np.zeros(16, np.uint8))]))  # overwrites the stub's arena
        server.receive()
        assert same(result, big)


def test_dlpack_round_trip():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = pb_utils.Tensor("T", array)
    again = pb_utils.Tensor.from_dlpack("U", tensor.to_dlpack())
    assert same(again.as_numpy(), array)
    assert same(pb_utils.Tensor.from_dlpack("V", tensor).as_numpy(), array)
    with pytest.raises(pb_utils.TritonModelException):
        pb_utils.Tensor("S", np.array([b"x"], dtype=object)).to_dlpack()


def test_auto_complete_model_config_setters():
    config = pb_utils.ModelConfig('{"name": "m", "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]}')
    config.add_input({"name": "X", "data_type": "TYPE_FP32", "dims": [4]})
    config.add_input({"name": "Z", "data_type": "TYPE_INT32", "dims": [-1], "optional": True})
    config.add_output({"name": "Y", "data_type": "TYPE_FP32", "dims": [4]})
    config.set_max_batch_size(8)
    config.set_dynamic_batching()
    config.set_model_transaction_policy({"decoupled": True})
    as_dict = config.as_dict()
    assert [i["name"] for i in as_dict["input"]] == ["X", "Z"]
    assert as_dict["max_batch_size"] == 8 and as_dict["dynamic_batching"] == {}
    with pytest.raises(ValueError, match="dims"):
        config.add_input({"name": "X", "data_type": "TYPE_FP32", "dims": [5]})
    with pytest.raises(ValueError, match="datatype"):
        config.add_output({"name": "Y", "data_type": "TYPE_INT8", "dims": [4]})
    with pytest.raises(ValueError, match="max_batch_size"):
        config.set_max_batch_size(2)
    with pytest.raises(ValueError, match="missing 'dims'"):
        config.add_output({"name": "W", "data_type": "TYPE_INT8"})
    with pytest.raises(ValueError, match="decoupled"):
        config.set_model_transaction_policy({"decoupled": False})
