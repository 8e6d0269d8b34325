"""Deterministic builders and checks: requests and batches for a config, and output checks against it.

These need neither hypothesis nor pytest (the strategies in :mod:`tritium.testing.strategies` generate the
same objects from hypothesis draws). Values are kept small (integers 0..9, floats from a normal distribution,
BYTES of up to 8 ASCII letters) so that a model reading an input as a count or a delay stays quick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.tensors import InferenceRequest, RequestedOutput, Tensor
from tritium.abc import Batch
from tritium.testing._modelconfig import config_datatype, full_dims

__all__ = [
    "assert_same_array",
    "batch_of",
    "build_request",
    "check_outputs",
    "random_array",
    "request_shape",
    "wire_sample",
]


def random_array(
    datatype: DataType, shape: Sequence[int], rng: np.random.Generator | None = None
) -> np.ndarray[Any, Any]:
    """A small-valued array of ``datatype`` (BYTES: object array of ``bytes``; BF16: ml_dtypes)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = tuple(shape)
    if datatype is DataType.BYTES:
        count = int(np.prod(shape, dtype=np.int64))
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
        items = [bytes(rng.choice(letters, size=int(rng.integers(0, 9)))) for _ in range(count)]
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    if datatype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    dtype = datatype.numpy_dtype
    if datatype in (DataType.FP16, DataType.FP32, DataType.FP64, DataType.BF16):
        return rng.standard_normal(size=shape).astype(dtype)
    return rng.integers(0, 10, size=shape).astype(dtype)


def wire_sample(wire: str, shape: Sequence[int], seed: int = 0, *, utf8_only: bool = True) -> np.ndarray[Any, Any]:
    """An array of Triton datatype ``wire`` spanning its whole range, that every client carries exactly
    (integers from min to max, floats multiples of 1/4; BYTES non-ASCII UTF-8, and with ``utf8_only`` False
    also bytes that are not UTF-8): for end-to-end round trips through a server."""
    rng = np.random.default_rng(seed)
    datatype = DataType(wire)
    shape = tuple(shape)
    if datatype is DataType.BYTES:
        count = int(np.prod(shape, dtype=np.int64))
        tail = b"" if utf8_only else b"\xff"
        array = np.empty(count, dtype=object)
        array[:] = [f"é{i}-{rng.integers(1000)}".encode() + tail for i in range(count)]
        return array.reshape(shape)
    if datatype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if datatype in (DataType.FP16, DataType.FP32, DataType.FP64, DataType.BF16):
        return (rng.integers(-64, 64, size=shape) / 4.0).astype(datatype.numpy_dtype)
    info = np.iinfo(datatype.numpy_dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=datatype.numpy_dtype, endpoint=True)


def assert_same_array(actual: Any, expected: np.ndarray[Any, Any]) -> None:
    """``actual`` (as a client decoded it) equals ``expected`` exactly: same shape; BYTES element by element
    (``str`` taken as UTF-8), BF16 by value, anything else same dtype and same bytes."""
    actual = np.asarray(actual)
    assert tuple(actual.shape) == tuple(expected.shape), (actual.shape, expected.shape)
    if expected.dtype == object:
        as_bytes = [x.encode() if isinstance(x, str) else bytes(x) for x in actual.ravel()]
        assert as_bytes == [bytes(x) for x in expected.ravel()]
    elif expected.dtype == DataType.BF16.numpy_dtype:
        np.testing.assert_array_equal(actual.astype(np.float32), expected.astype(np.float32))
    else:
        assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
        assert actual.tobytes() == expected.tobytes()


def request_shape(config: Any, tensor: Any, batch_size: int = 1, variable_dim: int = 3) -> tuple[int, ...]:
    """A concrete shape for a config tensor: batch dim ``batch_size`` (batching models), -1 dims
    ``variable_dim``."""
    dims = full_dims(config, tensor)
    shape = [variable_dim if d < 0 else d for d in dims]
    if config.max_batch_size > 0:
        shape[0] = batch_size
    return tuple(shape)


def build_request(
    config: Any,
    *,
    batch_size: int = 1,
    rng: np.random.Generator | None = None,
    variable_dim: int = 3,
    include_optional: bool = False,
    requested_outputs: Sequence[str] | None = None,
    values: Mapping[str, np.ndarray[Any, Any]] | None = None,
    request_id: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> InferenceRequest:
    """A request valid for ``config`` as the data plane hands it to a scheduler (``batch_size`` filled).

    ``values`` overrides the generated array of the inputs it names (and forces optional ones in); each must
    have the shape a client sends: for a batching model (``max_batch_size > 0``) the batch dimension first,
    ``batch_size`` rows, then the config's dims. A value of another shape raises ``ValueError`` saying the
    shape expected, rather than building a request the kernel's validation would refuse.
    ``requested_outputs`` None asks for every output.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    values = dict(values or {})
    unknown = sorted(set(values) - {tensor.name for tensor in config.input})
    if unknown:
        raise ValueError(f"build_request: model '{config.name}' has no input {', '.join(map(repr, unknown))}")
    inputs: dict[str, Tensor] = {}
    for tensor in config.input:
        datatype = config_datatype(tensor)
        if tensor.name in values:
            array = np.asarray(values[tensor.name], dtype=datatype.numpy_dtype)
            _check_value_shape(config, tensor, array.shape, batch_size)
        elif tensor.optional and not include_optional:
            continue
        else:
            array = random_array(datatype, request_shape(config, tensor, batch_size, variable_dim), rng)
        inputs[tensor.name] = Tensor(tensor.name, datatype, array)
    wanted = [RequestedOutput(name) for name in requested_outputs] if requested_outputs is not None else []
    return InferenceRequest(
        model_name=config.name,
        inputs=inputs,
        id=request_id,
        requested_outputs=wanted,
        parameters=dict(parameters or {}),
        batch_size=batch_size if config.max_batch_size > 0 else 0,
    )


def _check_value_shape(config: Any, tensor: Any, shape: tuple[int, ...], batch_size: int) -> None:
    """ValueError unless ``shape`` is what a client sends for ``tensor`` (batch dimension first when batching)."""
    expected = full_dims(config, tensor)
    batching = config.max_batch_size > 0
    if batching:
        expected = (batch_size, *expected[1:])
    if len(shape) == len(expected) and all(e < 0 or s == e for s, e in zip(shape, expected, strict=True)):
        return
    wanted = "[" + ", ".join("-1" if e < 0 else str(e) for e in expected) + "]"
    why = (
        f" (batch dimension first: model '{config.name}' batches, max_batch_size {config.max_batch_size}, "
        f"and batch_size is {batch_size})"
        if batching
        else ""
    )
    raise ValueError(
        f"build_request: value of input '{tensor.name}' has shape {list(shape)}, expected {wanted}{why}"
    )


def batch_of(config: Any, requests: Sequence[InferenceRequest]) -> Batch:
    """The :class:`tritium.Batch` the instance pool would hand a model for ``requests`` (inputs
    concatenated along the batch dimension, requested outputs united, every output when one asks for all)."""
    first = requests[0]
    if len(requests) == 1:
        inputs = {name: t.data for name, t in first.inputs.items()}
    else:
        inputs = {name: np.concatenate([r.inputs[name].data for r in requests]) for name in first.inputs}
    wanted: set[str] = set()
    for request in requests:
        if not request.requested_outputs:
            wanted = {o.name for o in config.output}
            break
        wanted.update(o.name for o in request.requested_outputs)
    batch_size = sum(r.batch_size for r in requests) if config.max_batch_size > 0 else 0
    return Batch(inputs, frozenset(wanted), tuple(requests), batch_size)


def check_outputs(
    config: Any,
    outputs: Mapping[str, Any],
    requested: Sequence[str] | frozenset[str],
    batch_size: int = 0,
) -> list[str]:
    """What is wrong with a model's outputs for ``config``; empty when they are right.

    Every requested output must be present, a numpy array of the config's datatype (BYTES: object array
    of ``bytes``), with the config's rank and fixed dims, and (batching models) ``batch_size`` first.
    Outputs with a ``reshape`` are checked against the reshape's rank instead of ``dims``.
    """
    problems: list[str] = []
    by_name = {o.name: o for o in config.output}
    for name in requested:
        spec = by_name.get(name)
        if spec is None:
            problems.append(f"output {name!r} is not in the config")
            continue
        if name not in outputs:
            problems.append(f"requested output {name!r} is missing")
            continue
        array = outputs[name]
        if not isinstance(array, np.ndarray):
            problems.append(f"output {name!r} is a {type(array).__name__}, not a numpy array")
            continue
        datatype = config_datatype(spec)
        if array.dtype != datatype.numpy_dtype:
            problems.append(f"output {name!r} has dtype {array.dtype}, config says {datatype.value}")
        elif datatype is DataType.BYTES:
            odd = next((x for x in array.reshape(-1) if not isinstance(x, bytes)), None)
            if odd is not None:
                problems.append(f"BYTES output {name!r} holds a {type(odd).__name__}, not bytes")
        dims = [int(d) for d in (spec.reshape.shape if spec.HasField("reshape") else spec.dims)]
        expected = ([batch_size] if config.max_batch_size > 0 else []) + dims
        shape = list(array.shape)
        if len(shape) != len(expected) or any(e >= 0 and e != s for s, e in zip(shape, expected, strict=False)):
            shown = ["-1" if e < 0 else str(e) for e in expected]
            problems.append(f"output {name!r} has shape {shape}, config expects [{', '.join(shown)}]")
    return problems
