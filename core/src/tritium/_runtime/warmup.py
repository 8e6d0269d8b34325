"""Model warmup (``model_warmup`` in the config): run each instance on generated inputs before READY."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium.abc import Batch, ModelInstance

if TYPE_CHECKING:
    from tritium.config import ModelConfig


def _warmup_array(
    spec: Any, batch_size: int, model_dir: Path, name: str, rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    datatype = DataType.from_config_enum(spec.data_type)
    dims = [int(d) for d in spec.dims]
    shape = ([batch_size] if batch_size > 0 else []) + dims
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    choice = spec.WhichOneof("input_data_type")
    if choice == "input_data_file":
        raw = (model_dir / "warmup" / spec.input_data_file).read_bytes()
        if datatype is DataType.BYTES:
            from tritium.codec import decode_bytes_elements

            items = decode_bytes_elements(raw, name)
            array = np.empty(count, dtype=object)
            array[:] = (items * count)[:count] if items else [b""] * count
            return array.reshape(shape)
        per_sample = int(np.prod(dims, dtype=np.int64)) * datatype.itemsize
        data = np.frombuffer(raw[:per_sample], dtype=datatype.numpy_dtype)
        sample = data.reshape(dims)
        return np.stack([sample] * batch_size) if batch_size > 0 else sample.copy()
    if datatype is DataType.BYTES:
        array = np.empty(count, dtype=object)
        array[:] = [b"0" if choice == "random_data" else b""] * count
        return array.reshape(shape)
    if choice == "random_data":
        if datatype is DataType.BOOL:
            return rng.integers(0, 2, size=shape).astype(np.bool_)
        if datatype.numpy_dtype.kind in "iu":
            return rng.integers(0, 100, size=shape).astype(datatype.numpy_dtype)
        return rng.random(size=shape).astype(datatype.numpy_dtype)
    return np.zeros(shape, dtype=datatype.numpy_dtype)


def run_warmup(config: ModelConfig, instance: ModelInstance, model_dir: Path) -> list[tuple[int, int]]:
    """Execute every warmup sample ``count`` times (at least once) on ``instance``; raise on failure.

    Returns ``(inferences, nanoseconds)`` of every execution: Triton counts warmup executions in the model's
    statistics and metrics like any other (its warmup requests go through the backend's normal execute), and
    so does the caller."""
    runs: list[tuple[int, int]] = []
    rng = np.random.default_rng(0)
    for sample in config.model_warmup:
        batch_size = int(sample.batch_size) if config.max_batch_size > 0 else 0
        try:
            inputs = {
                name: _warmup_array(spec, max(batch_size, 1) if config.max_batch_size > 0 else 0,
                                    model_dir, name, rng)
                for name, spec in sample.inputs.items()
            }
        except (OSError, ValueError) as exc:
            raise TritiumError.invalid_arg(f"failed to prepare warmup sample '{sample.name}': {exc}") from None
        batch = Batch(inputs, frozenset(o.name for o in config.output), (), max(batch_size, 1) if batch_size else 0)
        for _ in range(max(int(sample.count), 1)):
            start = time.monotonic_ns()
            try:
                instance.execute(batch)
            except Exception as exc:
                raise TritiumError.internal(f"warmup sample '{sample.name}' failed: {exc}") from exc
            runs.append((max(batch_size, 1), time.monotonic_ns() - start))
    return runs
