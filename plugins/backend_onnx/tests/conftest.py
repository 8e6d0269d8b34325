"""Fixtures of the onnxruntime backend's tests: ONNX graphs built with ``onnx.helper`` and model folders.

Test modules run with ``--import-mode=importlib`` and cannot import each other, so the graph builders are
handed out through the ``onnx_graphs`` fixture and the model folder writer through ``write_model``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 21
IR_VERSION = 10

ELEM_TYPES: dict[str, int] = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
    "BF16": TensorProto.BFLOAT16,
}
"""Every Triton datatype (wire name) and its ONNX element type."""


def make_model(
    nodes: Sequence[Any],
    inputs: Sequence[tuple[str, int, Sequence[int | str] | None]],
    outputs: Sequence[tuple[str, int, Sequence[int | str] | None]],
    initializers: Sequence[Any] = (),
    *,
    opset: int = OPSET,
) -> Any:
    """An ``onnx.ModelProto`` from nodes and ``(name, elem_type, shape)`` triples (shape None = unknown)."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, t, None if s is None else list(s)) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None if s is None else list(s)) for n, t, s in outputs],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    return model


def identity(elem_type: int, shape: Sequence[int | str] | None = ("batch", "n"), count: int = 1) -> Any:
    """INPUTi -> OUTPUTi unchanged, for i < count."""
    return make_model(
        [helper.make_node("Identity", [f"INPUT{i}"], [f"OUTPUT{i}"]) for i in range(count)],
        [(f"INPUT{i}", elem_type, shape) for i in range(count)],
        [(f"OUTPUT{i}", elem_type, shape) for i in range(count)],
    )


def add_sub(elem_type: int = TensorProto.INT32, shape: Sequence[int | str] = ("batch", 16)) -> Any:
    """INPUT0, INPUT1 -> OUTPUT0 = sum, OUTPUT1 = difference (Triton's ``simple``)."""
    return make_model(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        [("INPUT0", elem_type, shape), ("INPUT1", elem_type, shape)],
        [("OUTPUT0", elem_type, shape), ("OUTPUT1", elem_type, shape)],
    )


def string_add_sub(shape: Sequence[int | str] = ("batch", 16)) -> Any:
    """The add/sub model on decimal strings (Triton's ``simple_string``)."""
    return make_model(
        [helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32),
         helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32),
         helper.make_node("Add", ["a", "b"], ["s"]),
         helper.make_node("Sub", ["a", "b"], ["d"]),
         helper.make_node("Cast", ["s"], ["OUTPUT0"], to=TensorProto.STRING),
         helper.make_node("Cast", ["d"], ["OUTPUT1"], to=TensorProto.STRING)],
        [("INPUT0", TensorProto.STRING, shape), ("INPUT1", TensorProto.STRING, shape)],
        [("OUTPUT0", TensorProto.STRING, shape), ("OUTPUT1", TensorProto.STRING, shape)],
    )


def parse_config(text: str = "") -> Any:
    """A ModelConfig from protobuf text."""
    return text_format.Parse(text, ModelConfig())


def write_model(
    root: Path,
    name: str,
    model: Any,
    *,
    version: int = 1,
    external_data: bool = False,
) -> ModelSource:
    """Lay out ``root/name/version/model.onnx`` (a ``model.onnx/`` folder with the weights in an external
    data file when ``external_data``) and return its ModelSource."""
    model_dir = root / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    model_file = version_dir / "model.onnx"
    if external_data:
        model_file.mkdir(exist_ok=True)
        onnx.save_model(
            model,
            str(model_file / "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        model_file.write_bytes(model.SerializeToString())
    return ModelSource(
        name=name, version=version, model_dir=model_dir, version_dir=version_dir, model_file=model_file
    )


def cpu_placement(index: int = 0) -> InstancePlacement:
    return InstancePlacement(name=f"instance_{index}", kind="CPU", device_id=0, group_name="group", index=index)


@pytest.fixture
def onnx_graphs() -> types.SimpleNamespace:
    """The graph builders of this conftest, for test modules."""
    return types.SimpleNamespace(
        make_model=make_model,
        identity=identity,
        add_sub=add_sub,
        string_add_sub=string_add_sub,
        helper=helper,
        numpy_helper=numpy_helper,
        TensorProto=TensorProto,
        ELEM_TYPES=ELEM_TYPES,
    )


@pytest.fixture
def config_from() -> Callable[[str], Any]:
    """Parse protobuf text into a ModelConfig."""
    return parse_config


@pytest.fixture
def model_writer(tmp_path: Path) -> Callable[..., ModelSource]:
    """``model_writer(name, model, version=1, external_data=False) -> ModelSource`` under ``tmp_path``."""

    def write(name: str, model: Any, **kwargs: Any) -> ModelSource:
        return write_model(tmp_path, name, model, **kwargs)

    return write


@pytest.fixture
def placement() -> Callable[[int], InstancePlacement]:
    return cpu_placement


@pytest.fixture
def backend() -> Any:
    from tritium_backend_onnx import OnnxBackend

    return OnnxBackend({})


@pytest.fixture
def load(backend: Any) -> Callable[..., Any]:
    """``load(source, config) -> (completed_config, instance)``: auto-complete then create an instance."""

    def run(source: ModelSource, config: Any | None = None, *, complete: bool = True) -> tuple[Any, Any]:
        config = config if config is not None else parse_config()
        if complete:
            config = backend.auto_complete_config(source, config)
        return config, backend.create_instance(source, config, cpu_placement())

    return run

