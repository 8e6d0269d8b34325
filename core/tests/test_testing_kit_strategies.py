"""The kit's hypothesis strategies and builders generate what they promise: valid configs, requests the kernel's
own validation accepts, arrays of the right representation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tritium
import tritium.testing.fakes
from tritium._base.events import BatchExecuted, ModelLoaded, ModelUnloaded, QueueSizeChanged, RequestCompleted
from tritium._runtime.validation import RequestValidator
from tritium.config import normalize_model_config
from tritium.testing import strategies as tst
from tritium.testing._modelconfig import config_datatype
from tritium.testing.builders import batch_of, build_request, random_array

DataType = tritium.DataType


@given(tst.datatypes())
def test_datatypes_are_datatypes(datatype: DataType) -> None:
    assert isinstance(datatype, DataType)


@given(tst.datatypes(include=[DataType.FP32, DataType.BYTES], exclude=[DataType.BYTES]))
def test_datatypes_can_be_restricted(datatype: DataType) -> None:
    assert datatype is DataType.FP32


@given(tst.shapes(min_rank=1, max_rank=3, max_side=5, max_elements=20))
def test_shapes_are_bounded(shape: tuple[int, ...]) -> None:
    assert 1 <= len(shape) <= 3
    assert all(0 <= s <= 5 for s in shape)
    assert int(np.prod(shape)) <= 20


@given(st.booleans(), st.data())
def test_dims_hold_wildcards_only_when_asked(wildcard: bool, data: st.DataObject) -> None:
    dims = data.draw(tst.dims(wildcard=wildcard))
    assert all(d >= 1 or (wildcard and d == -1) for d in dims)
    shape = data.draw(tst.shapes_for(dims, max_side=3))
    assert all(s == d or (d == -1 and 1 <= s <= 3) for s, d in zip(shape, dims, strict=True))


@given(st.data())
def test_arrays_use_the_kernels_representation(data: st.DataObject) -> None:
    datatype = data.draw(tst.datatypes())
    array = data.draw(tst.arrays(datatype, tst.shapes(max_elements=8)))
    assert array.dtype == datatype.numpy_dtype
    if datatype is DataType.BYTES:
        assert all(isinstance(x, bytes) for x in array.reshape(-1))
    if datatype.numpy_dtype.kind == "f" or datatype is DataType.BF16:
        assert not np.isnan(array.astype(np.float64)).any()


@given(st.data())
def test_arrays_may_hold_nan_when_asked(data: st.DataObject) -> None:
    array = data.draw(tst.arrays(DataType.FP32, (4,), allow_nan=True))
    assert array.dtype == np.float32


@given(tst.tensors())
def test_tensors_match_their_datatype(tensor: tritium.Tensor) -> None:
    assert tensor.data.dtype == tensor.datatype.numpy_dtype


@settings(max_examples=60, deadline=None)
@given(tst.model_configs(optional_inputs=True, decoupled=st.booleans()))
def test_model_configs_are_valid_configs(config: Any) -> None:
    normalized = normalize_model_config(config, model_name=config.name, source="<strategy>")
    assert len(normalized.input) == len(normalized.output) >= 1
    for tensor_in, tensor_out in zip(config.input, config.output, strict=True):
        assert config_datatype(tensor_in) is config_datatype(tensor_out)
        assert list(tensor_in.dims) == list(tensor_out.dims)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_requests_for_pass_the_kernels_validation(data: st.DataObject) -> None:
    config = data.draw(tst.model_configs(optional_inputs=True))
    request = data.draw(tst.requests_for(config))
    filled = request.batch_size
    RequestValidator(config).validate(request)  # raises TritiumError on anything invalid
    assert request.batch_size == filled
    if config.max_batch_size > 0:
        assert 1 <= request.batch_size <= config.max_batch_size
    names = {o.name for o in config.output}
    assert {o.name for o in request.requested_outputs} <= names


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_requests_for_honours_element_strategies(data: st.DataObject) -> None:
    config = data.draw(tst.model_configs(datatypes=st.just(DataType.UINT32), max_tensors=1))
    request = data.draw(tst.requests_for(config, elements={"INPUT0": st.integers(0, 5)}))
    assert int(request.inputs["INPUT0"].data.max(initial=0)) <= 5


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_build_request_passes_validation_and_batches(data: st.DataObject) -> None:
    config = data.draw(tst.model_configs(optional_inputs=True))
    size = data.draw(st.integers(1, max(config.max_batch_size, 1)))
    first = build_request(config, batch_size=size, include_optional=True)
    second = build_request(config, batch_size=size, include_optional=True, rng=np.random.default_rng(1))
    RequestValidator(config).validate(first)
    batch = batch_of(config, [first, second])
    if config.max_batch_size > 0:
        assert batch.batch_size == 2 * size
        assert all(a.shape[0] == 2 * size for a in batch.inputs.values())
    else:
        assert batch.batch_size == 0


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_build_request_takes_values_of_the_client_shape(data: st.DataObject) -> None:
    config = data.draw(tst.model_configs(max_tensors=1))
    size = data.draw(st.integers(1, max(config.max_batch_size, 1)))
    generated = build_request(config, batch_size=size)
    given_values = {name: tensor.data for name, tensor in generated.inputs.items()}
    request = build_request(config, batch_size=size, values=given_values)
    RequestValidator(config).validate(request)
    assert {n: t.data.shape for n, t in request.inputs.items()} == {n: v.shape for n, v in given_values.items()}


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_build_request_refuses_values_without_the_batch_dimension(data: st.DataObject) -> None:
    config = data.draw(tst.model_configs(max_tensors=1, max_batch_size=st.integers(1, 8)))
    size = data.draw(st.integers(1, config.max_batch_size))
    name = config.input[0].name
    one_row = build_request(config, batch_size=1).inputs[name].data[0]  # what a non-batching model would take
    with pytest.raises(ValueError, match=rf"value of input '{name}' has shape .* \(batch dimension first: model"):
        build_request(config, batch_size=size, values={name: one_row})
    rows = build_request(config, batch_size=size + 1).inputs[name].data  # one row too many
    with pytest.raises(ValueError, match=f"batch_size is {size}"):
        build_request(config, batch_size=size, values={name: rows})


def test_build_request_refuses_values_of_unknown_inputs() -> None:
    config = tritium.testing.fakes.identity_config("m", max_batch_size=0)
    with pytest.raises(ValueError, match="model 'm' has no input 'INPUT9'"):
        build_request(config, values={"INPUT9": np.zeros(3, np.float32)})
    request = build_request(config, values={"INPUT0": np.arange(4, dtype=np.float32)})  # dims [-1]: any length
    assert request.inputs["INPUT0"].data.shape == (4,)


def test_random_array_covers_every_datatype() -> None:
    for datatype in DataType:
        array = random_array(datatype, (2, 3))
        assert array.shape == (2, 3) and array.dtype == datatype.numpy_dtype


@settings(max_examples=200)
@given(tst.events())
def test_events_cover_every_type(event: Any) -> None:
    assert isinstance(event, (RequestCompleted, BatchExecuted, ModelLoaded, ModelUnloaded, QueueSizeChanged))
