"""Rendering a model's outputs per request (``_runtime/outputs.py``): what the model produced goes out with
its own datatype, as Triton sends it, never cast to the configured one behind the client's back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritium import DataType, InferenceRequest, RequestedOutput, TritiumError
from tritium._runtime.outputs import OutputRenderer, OutputSpec

NUMERIC = [d for d in DataType if d is not DataType.BYTES]


def renderer(datatype: DataType, batching: bool = False) -> OutputRenderer:
    return OutputRenderer("m", "1", {"Y": OutputSpec(datatype, None)}, batching)


def render(r: OutputRenderer, array: np.ndarray, *names: str) -> list:
    request = InferenceRequest(model_name="m", inputs={}, requested_outputs=[RequestedOutput(n) for n in names])
    return r.request_outputs(request, {"Y": array}, 0, 1, 1, False)


def test_an_output_of_the_configured_datatype_is_passed_as_it_is() -> None:
    array = np.array([1, 2], np.int32)
    (tensor,) = render(renderer(DataType.INT32), array)
    assert tensor.datatype is DataType.INT32 and tensor.data is array


def test_a_float_for_an_integer_output_keeps_its_values_and_datatype() -> None:
    """Triton 2.51's Python backend, side by side: FP32 [1.5] for an INT32 output answers FP32 [1.5]; a cast
    would have answered INT32 [1]."""
    (tensor,) = render(renderer(DataType.INT32), np.array([1.5], np.float32))
    assert tensor.datatype is DataType.FP32 and tensor.data.tolist() == [1.5]


@given(produced=st.sampled_from(NUMERIC), configured=st.sampled_from(NUMERIC))
def test_every_numeric_output_goes_out_as_produced(produced: DataType, configured: DataType) -> None:
    array = np.zeros(3, produced.numpy_dtype)
    (tensor,) = render(renderer(configured), array)
    assert tensor.datatype is produced and tensor.data.dtype == produced.numpy_dtype


def test_strings_for_a_bytes_output_become_bytes() -> None:
    (tensor,) = render(renderer(DataType.BYTES), np.array(["a", "bc"]))
    assert tensor.datatype is DataType.BYTES and tensor.data.tolist() == [b"a", b"bc"]


def test_a_requested_output_the_model_did_not_produce_is_an_internal_error() -> None:
    with pytest.raises(TritiumError, match="model 'm' did not produce requested output 'Z'"):
        render(renderer(DataType.INT32), np.zeros(1, np.int32), "Z")
