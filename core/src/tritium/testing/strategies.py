"""Hypothesis strategies for Tritium's data model: datatypes, shapes, arrays, tensors, configs, requests.

Use them in a plugin's own property tests::

    from hypothesis import given
    from tritium.testing import strategies as tst

    @given(tst.model_configs().flatmap(tst.requests_for))
    def test_my_codec_round_trips(request): ...

``requests_for(config)`` draws requests the kernel's validation accepts for ``config`` (right names,
datatypes, shapes, batch size within ``max_batch_size``), so a backend or scheduler test gets only inputs
that can reach it in a real server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tritium._base.datatypes import DataType
from tritium._base.errors import FailureReason
from tritium._base.events import (
    BatchExecuted,
    Event,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)
from tritium._base.tensors import InferenceRequest, RequestedOutput, Tensor
from tritium.testing._modelconfig import ModelConfig, config_datatype, new_config

__all__ = [
    "arrays",
    "datatypes",
    "dims",
    "events",
    "model_configs",
    "names",
    "requests_for",
    "shapes",
    "shapes_for",
    "tensors",
]

NUMERIC = tuple(d for d in DataType if d not in (DataType.BYTES, DataType.BOOL))
FLOATING = (DataType.FP16, DataType.FP32, DataType.FP64, DataType.BF16)


def datatypes(
    *, exclude: Sequence[DataType] = (), include: Sequence[DataType] | None = None
) -> st.SearchStrategy[DataType]:
    """Any :class:`tritium.DataType` (or those of ``include``), minus ``exclude``."""
    pool = [d for d in (include if include is not None else DataType) if d not in exclude]
    return st.sampled_from(pool)


_any_datatype = datatypes


def names(*, prefix: str = "") -> st.SearchStrategy[str]:
    """Tensor or model names: a letter or underscore, then letters, digits, underscores (up to 16)."""
    first = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
    rest = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", max_size=15)
    return st.builds(lambda a, b: prefix + a + b, first, rest)


def shapes(
    *, min_rank: int = 1, max_rank: int = 3, min_side: int = 0, max_side: int = 4, max_elements: int = 64
) -> st.SearchStrategy[tuple[int, ...]]:
    """Concrete shapes with bounded rank, sides and element count (keeps examples small)."""
    return hnp.array_shapes(min_dims=min_rank, max_dims=max_rank, min_side=min_side, max_side=max_side).filter(
        lambda shape: int(np.prod(shape, dtype=np.int64)) <= max_elements
    )


def dims(
    *, min_rank: int = 1, max_rank: int = 3, max_side: int = 4, wildcard: bool = True
) -> st.SearchStrategy[tuple[int, ...]]:
    """Config ``dims``: like :func:`shapes` with sides >= 1, where each side may be -1 when ``wildcard``."""
    side = st.integers(1, max_side)
    if wildcard:
        side = st.one_of(side, st.just(-1))
    return st.lists(side, min_size=min_rank, max_size=max_rank).map(tuple)


def shapes_for(dims_: Sequence[int], *, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Concrete shapes matching config dims: each -1 becomes a side in ``[min_side, max_side]``."""
    sides = [st.integers(min_side, max_side) if d < 0 else st.just(int(d)) for d in dims_]
    return st.tuples(*sides)


def _bytes_arrays(shape: tuple[int, ...], max_length: int) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    count = int(np.prod(shape, dtype=np.int64))

    def build(items: list[bytes]) -> np.ndarray[Any, Any]:
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)

    return st.lists(st.binary(max_size=max_length), min_size=count, max_size=count).map(build)


def arrays(
    datatype: DataType,
    shape: Sequence[int] | st.SearchStrategy[tuple[int, ...]],
    *,
    allow_nan: bool = False,
    allow_infinity: bool = False,
    elements: st.SearchStrategy[Any] | None = None,
    max_bytes_length: int = 16,
) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    """numpy arrays holding ``datatype``: BYTES as object arrays of ``bytes``, BF16 as
    ``ml_dtypes.bfloat16`` (drawn as float32 and rounded), BOOL as ``np.bool_``. NaN and infinities only
    when asked for; ``elements`` overrides the element strategy (numeric types)."""
    if not isinstance(shape, st.SearchStrategy):
        shape = st.just(tuple(int(s) for s in shape))
    if datatype is DataType.BYTES:
        return shape.flatmap(lambda s: _bytes_arrays(s, max_bytes_length))
    if datatype is DataType.BF16:
        floats = elements or st.floats(
            width=32, allow_nan=allow_nan, allow_infinity=allow_infinity, allow_subnormal=False
        )
        return hnp.arrays(np.float32, shape, elements=floats).map(lambda a: a.astype(datatype.numpy_dtype))
    if elements is None and datatype in FLOATING:
        if datatype is DataType.FP16:
            elements = st.floats(width=16, allow_nan=allow_nan, allow_infinity=allow_infinity)
        elif datatype is DataType.FP32:
            elements = st.floats(width=32, allow_nan=allow_nan, allow_infinity=allow_infinity)
        else:
            elements = st.floats(width=64, allow_nan=allow_nan, allow_infinity=allow_infinity)
    return hnp.arrays(datatype.numpy_dtype, shape, elements=elements)


def tensors(
    *,
    name: str | st.SearchStrategy[str] | None = None,
    datatype: DataType | st.SearchStrategy[DataType] | None = None,
    shape: Sequence[int] | st.SearchStrategy[tuple[int, ...]] | None = None,
    allow_nan: bool = False,
) -> st.SearchStrategy[Tensor]:
    """:class:`tritium.Tensor` values (any datatype and small shape unless fixed)."""
    name_s = names() if name is None else (name if isinstance(name, st.SearchStrategy) else st.just(name))
    if datatype is None:
        datatype_s: st.SearchStrategy[DataType] = datatypes()
    elif isinstance(datatype, st.SearchStrategy):
        datatype_s = datatype
    else:
        datatype_s = st.just(datatype)
    shape_s = shapes() if shape is None else shape

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        dt = draw(datatype_s)
        return Tensor(draw(name_s), dt, draw(arrays(dt, shape_s, allow_nan=allow_nan)))

    return build()


def model_configs(
    *,
    backend: str = "identity",
    name: str | st.SearchStrategy[str] = "model",
    datatypes: st.SearchStrategy[DataType] | None = None,
    min_tensors: int = 1,
    max_tensors: int = 3,
    max_batch_size: st.SearchStrategy[int] | None = None,
    wildcard: bool = True,
    max_rank: int = 3,
    optional_inputs: bool = False,
    decoupled: bool | st.SearchStrategy[bool] = False,
) -> st.SearchStrategy[ModelConfig]:
    """Configs of simple models: inputs ``INPUT0..n`` and outputs ``OUTPUT0..n``, output *i* with the
    datatype and dims of input *i* (the shape of Triton's identity models, served by
    :class:`tritium.testing.fakes.IdentityBackend`). ``max_batch_size`` draws 0..8 by default; dims may
    hold -1 when ``wildcard``; with ``optional_inputs`` some inputs are marked ``optional`` (their outputs
    are then produced only when they are given)."""
    datatype_s = datatypes if datatypes is not None else _any_datatype()
    mbs = max_batch_size if max_batch_size is not None else st.integers(0, 8)
    name_s = name if isinstance(name, st.SearchStrategy) else st.just(name)
    decoupled_s = decoupled if isinstance(decoupled, st.SearchStrategy) else st.just(decoupled)

    @st.composite
    def build(draw: st.DrawFn) -> ModelConfig:
        count = draw(st.integers(min_tensors, max_tensors))
        tensors_ = [(draw(datatype_s), draw(dims(max_rank=max_rank, wildcard=wildcard))) for _ in range(count)]
        optional = [f"INPUT{i}" for i in range(count) if optional_inputs and i > 0 and draw(st.booleans())]
        return new_config(
            draw(name_s),
            backend=backend,
            max_batch_size=draw(mbs),
            inputs=[(f"INPUT{i}", dt, d) for i, (dt, d) in enumerate(tensors_)],
            outputs=[(f"OUTPUT{i}", dt, d) for i, (dt, d) in enumerate(tensors_)],
            optional_inputs=optional,
            decoupled=draw(decoupled_s),
        )

    return build()


def requests_for(
    config: ModelConfig,
    *,
    batch_size: int | st.SearchStrategy[int] | None = None,
    max_side: int = 4,
    include_optional: bool | None = None,
    requested_outputs: bool = True,
    elements: Mapping[str, st.SearchStrategy[Any]] | None = None,
    allow_nan: bool = False,
    same_variable_dims: bool = False,
) -> st.SearchStrategy[InferenceRequest]:
    """Requests valid for ``config``: every required input (optional ones when ``include_optional``, or
    drawn when None), with the config's datatype and a shape matching its dims (-1 dims drawn in
    ``1..max_side``, or all equal to one drawn size when ``same_variable_dims``), a batch dimension of
    1..``max_batch_size`` first for batching models, and (``requested_outputs``) a drawn subset of the
    outputs, or none meaning all. ``elements`` maps input names to element strategies (e.g. a delay input
    that must stay small). ``batch_size`` is filled as the data plane fills it (0 for non-batching)."""
    element_map = dict(elements or {})

    @st.composite
    def build(draw: st.DrawFn) -> InferenceRequest:
        batching = config.max_batch_size > 0
        if batch_size is None:
            size = draw(st.integers(1, config.max_batch_size)) if batching else 0
        elif isinstance(batch_size, st.SearchStrategy):
            size = draw(batch_size)
        else:
            size = batch_size
        shared = draw(st.integers(1, max_side)) if same_variable_dims else None
        inputs: dict[str, Tensor] = {}
        for tensor in config.input:
            if tensor.optional:
                wanted = include_optional if include_optional is not None else draw(st.booleans())
                if not wanted:
                    continue
            dims_ = [int(d) for d in tensor.dims]
            if shared is not None:
                dims_ = [shared if d < 0 else d for d in dims_]
            shape = draw(shapes_for(dims_, max_side=max_side))
            if batching:
                shape = (size, *shape)
            datatype = config_datatype(tensor)
            array = draw(arrays(datatype, shape, allow_nan=allow_nan, elements=element_map.get(tensor.name)))
            inputs[tensor.name] = Tensor(tensor.name, datatype, array)
        wanted_outputs: list[RequestedOutput] = []
        if requested_outputs and len(config.output):
            chosen = draw(st.lists(st.sampled_from([o.name for o in config.output]), unique=True))
            wanted_outputs = [RequestedOutput(n) for n in chosen]
        return InferenceRequest(
            model_name=config.name,
            inputs=inputs,
            requested_outputs=wanted_outputs,
            batch_size=size,
        )

    return build()


def events(*, odd: bool = True) -> st.SearchStrategy[Event]:
    """Every kernel event type; with ``odd`` the values include what a sink must survive: empty and
    non-ASCII model names, zero and huge counts, zero durations, a missing failure reason."""
    text = st.text(max_size=12) if odd else names()
    count = st.integers(0, 2**40) if odd else st.integers(1, 64)
    ns = st.integers(0, 2**62) if odd else st.integers(0, 10**9)
    version = st.one_of(st.integers(0, 2**31).map(str), st.just("")) if odd else st.integers(1, 9).map(str)
    reason = st.one_of(st.none(), st.sampled_from(FailureReason))
    completed = st.builds(RequestCompleted, text, version, st.booleans(), reason, count, ns, ns, ns, ns, ns)
    return st.one_of(
        completed,
        st.builds(BatchExecuted, text, version, count, count),
        st.builds(ModelLoaded, text, version, st.floats(0, 1e6, allow_nan=False)),
        st.builds(ModelUnloaded, text, version),
        st.builds(QueueSizeChanged, text, version, count),
    )
