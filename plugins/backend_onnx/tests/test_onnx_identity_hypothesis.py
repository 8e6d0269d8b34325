"""Property test: an ONNX identity model returns its input unchanged, for every datatype and many shapes.

Floats include NaN, infinities and subnormals, and are compared bit for bit; BYTES elements are any UTF-8
text (an ONNX string tensor cannot hold other bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_backend_onnx import OnnxBackend

from tritium import Batch, DataType
from tritium.testing.strategies import arrays

ELEM = {
    DataType.BOOL: 9, DataType.UINT8: 2, DataType.UINT16: 4, DataType.UINT32: 12, DataType.UINT64: 13,
    DataType.INT8: 3, DataType.INT16: 5, DataType.INT32: 6, DataType.INT64: 7, DataType.FP16: 10,
    DataType.FP32: 1, DataType.FP64: 11, DataType.BYTES: 8, DataType.BF16: 16,
}
"""Triton datatype -> ``onnx.TensorProto`` element type number."""


class Models:
    """Identity instances created on first use: one per (datatype, rank, batching)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.instances: dict[tuple[DataType, int, bool], tuple[Any, Any]] = {}

    def get(self, datatype: DataType, rank: int, batching: bool) -> tuple[Any, Any]:
        key = (datatype, rank, batching)
        if key not in self.instances:
            self.instances[key] = self._load(datatype, rank, batching)
        return self.instances[key]

    def _load(self, datatype: DataType, rank: int, batching: bool) -> tuple[Any, Any]:
        from onnx import helper

        from tritium import InstancePlacement, ModelSource
        from tritium.config import ModelConfig

        shape = ["batch"] + [f"d{i}" for i in range(rank - 1)]
        graph = helper.make_graph(
            [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
            "identity",
            [helper.make_tensor_value_info("INPUT0", ELEM[datatype], shape)],
            [helper.make_tensor_value_info("OUTPUT0", ELEM[datatype], shape)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        model.ir_version = 10
        name = f"identity_{datatype.value.lower()}_{rank}_{int(batching)}"
        version_dir = self.root / name / "1"
        version_dir.mkdir(parents=True)
        (version_dir / "model.onnx").write_bytes(model.SerializeToString())
        source = ModelSource(name, 1, version_dir.parent, version_dir, version_dir / "model.onnx")
        backend = OnnxBackend({"default-max-batch-size": "8" if batching else "0"})
        config = backend.auto_complete_config(source, ModelConfig())
        assert config.max_batch_size == (8 if batching else 0)
        instance = backend.create_instance(source, config, InstancePlacement("i", "CPU", 0, "g", 0))
        return config, instance


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    pytest.importorskip("onnx")
    return Models(tmp_path_factory.mktemp("identity"))


def _utf8_arrays(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    count = int(np.prod(shape))

    def build(items: list[str]) -> np.ndarray:
        array = np.empty(count, dtype=object)
        array[:] = [item.encode("utf-8") for item in items]
        return array.reshape(shape)

    return st.lists(st.text(max_size=12), min_size=count, max_size=count).map(build)


@st.composite
def cases(draw: st.DrawFn) -> tuple[DataType, int, bool, np.ndarray]:
    datatype = draw(st.sampled_from(list(ELEM)))
    rank = draw(st.integers(2, 3))
    batching = draw(st.booleans())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    if datatype is DataType.BYTES:
        array = draw(_utf8_arrays(shape))
    elif datatype in (DataType.FP16, DataType.FP32, DataType.FP64):
        array = draw(arrays(datatype, shape, allow_nan=True, allow_infinity=True))
    elif datatype is DataType.BF16:
        # any 16-bit pattern is a bfloat16 (NaNs with payloads, infinities, subnormals)
        words = draw(arrays(DataType.UINT16, shape))
        array = words.view(DataType.BF16.numpy_dtype)
    else:
        array = draw(arrays(datatype, shape))
    return datatype, rank, batching, array


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_identity_returns_its_input(models: Models, case: tuple[DataType, int, bool, np.ndarray]) -> None:
    datatype, rank, batching, array = case
    _, instance = models.get(datatype, rank, batching)
    batch = Batch({"INPUT0": array}, frozenset({"OUTPUT0"}), (), array.shape[0] if batching else 0)
    out = instance.execute(batch)
    assert set(out) == {"OUTPUT0"}
    result = out["OUTPUT0"]
    assert result.shape == array.shape
    assert result.dtype == array.dtype
    if datatype is DataType.BYTES:
        assert result.tolist() == array.tolist()
    else:
        assert result.tobytes() == array.tobytes()
