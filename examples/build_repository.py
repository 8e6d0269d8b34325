#!/usr/bin/env python3
"""Build Tritium's example model repository: small ONNX models generated with the ``onnx`` helpers.

    python examples/build_repository.py OUT_DIR [--test-models]

Nothing is downloaded: every graph is written by code below and every weight comes from a fixed seed, so
the output is the same on every run and machine. Files are rewritten only when their content changed, so
a second run is fast and leaves the repository (and a server polling it) undisturbed.

The served examples (``make serve``; docs/examples.md shows how to query each one):

- ``simple``: Triton's classic example. INPUT0, INPUT1 INT32 [16] -> OUTPUT0 = sum, OUTPUT1 = difference;
  max_batch_size 8.
- ``simple_string``: the same on BYTES tensors holding decimal numbers as text (the graph casts the strings
  to INT32 and the results back to strings).
- ``identity_fp32``: INPUT0 FP32 [-1] -> OUTPUT0, max_batch_size 64 (Triton's QA identity model).
- ``image_classification_model``: a small CNN, FP32 [3,224,224] -> FP32 [1000] class probabilities, with
  labels, max_batch_size 64 and a dynamic batcher preferring batches of 16 and 32 within 10 ms.
- ``simple_autocomplete``: no config.pbtxt at all; the onnxruntime backend derives inputs, outputs,
  max_batch_size (4) and dynamic batching from the graph. INPUT0, INPUT1 FP32 [4] -> OUTPUT0 = sum,
  OUTPUT1 = product.
- ``simple_savedmodel``: ``simple`` as a TensorFlow SavedModel with no config.pbtxt (auto-completed from its
  signature), built by ``examples/tf_models.py``; left out when TensorFlow is not installed.
- ``image_preprocess``, ``token_stream`` (decoupled), ``classify_pipeline`` (BLS over
  ``image_classification_model``): Python-backend models (``model.py``), copied from ``examples/python/`` by
  ``examples/python_models.py``.
- ``simple_torchscript``, ``simple_aoti``: ``simple`` as a TorchScript ``model.pt`` and as an AOTInductor
  ``model.pt2`` (pytorch backend), built by ``examples/torch_models.py``; left out without torch
  (``simple_aoti`` also without a C++ compiler).
- ``simple_versions``: three versions (1, 2, 3) of INPUT0 INT32 [4] -> OUTPUT0 = INPUT0 + version, with a
  version policy serving only versions 1 and 3.

``--test-models`` (or :func:`build_test_repository`) adds the models only tests need: an identity model
for every ONNX datatype Triton knows (``auto_identity_<type>``, auto-completed), a non-batching identity, and a
model whose weights live in an external data file inside a ``model.onnx/`` directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
SEED = 20240611

# ----------------------------------------------------------------------------------------------- helpers


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], name: str,
           initializers: Sequence[onnx.TensorProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tritium")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _tensor(name: str, elem_type: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _write(path: Path, content: bytes | str) -> bool:
    """Write ``content`` unless the file already holds exactly that; True when the file changed."""
    data = content.encode() if isinstance(content, str) else content
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def _sibling(module: str) -> Any:
    """A builder module beside this file (this file also runs as a script and is loaded by path in tests)."""
    spec = importlib.util.spec_from_file_location(module, Path(__file__).with_name(f"{module}.py"))
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _write_model(out: Path, name: str, model: onnx.ModelProto, config: str | None, version: int = 1) -> None:
    _write(out / name / str(version) / "model.onnx", model.SerializeToString())
    if config is not None:
        _write(out / name / "config.pbtxt", config)


# ----------------------------------------------------------------------------------------------- models


def add_sub_model(elem_type: int = TensorProto.INT32, dims: int = 16) -> onnx.ModelProto:
    """INPUT0, INPUT1 [batch, dims] -> OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1."""
    shape: list[int | str] = ["batch", dims]
    return _model(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        [_tensor("INPUT0", elem_type, shape), _tensor("INPUT1", elem_type, shape)],
        [_tensor("OUTPUT0", elem_type, shape), _tensor("OUTPUT1", elem_type, shape)],
        "simple",
    )


def add_sub_string_model(dims: int = 16) -> onnx.ModelProto:
    """The add/sub model on strings: decimal text in, decimal text out (Cast string<->int32)."""
    shape: list[int | str] = ["batch", dims]
    return _model(
        [helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32),
         helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32),
         helper.make_node("Add", ["a", "b"], ["sum"]),
         helper.make_node("Sub", ["a", "b"], ["difference"]),
         helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING),
         helper.make_node("Cast", ["difference"], ["OUTPUT1"], to=TensorProto.STRING)],
        [_tensor("INPUT0", TensorProto.STRING, shape), _tensor("INPUT1", TensorProto.STRING, shape)],
        [_tensor("OUTPUT0", TensorProto.STRING, shape), _tensor("OUTPUT1", TensorProto.STRING, shape)],
        "simple_string",
    )


def add_mul_model() -> onnx.ModelProto:
    """INPUT0, INPUT1 FP32 [batch, 4] -> OUTPUT0 = sum, OUTPUT1 = product."""
    shape: list[int | str] = ["batch", 4]
    return _model(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Mul", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        [_tensor("INPUT0", TensorProto.FLOAT, shape), _tensor("INPUT1", TensorProto.FLOAT, shape)],
        [_tensor("OUTPUT0", TensorProto.FLOAT, shape), _tensor("OUTPUT1", TensorProto.FLOAT, shape)],
        "simple_autocomplete",
    )


def identity_model(elem_type: int, shape: Sequence[int | str] = ("batch", "n"),
                   name: str = "identity") -> onnx.ModelProto:
    """INPUT0 -> OUTPUT0 unchanged."""
    return _model(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        [_tensor("INPUT0", elem_type, shape)],
        [_tensor("OUTPUT0", elem_type, shape)],
        name,
    )


def add_constant_model(value: int) -> onnx.ModelProto:
    """INPUT0 INT32 [batch, 4] -> OUTPUT0 = INPUT0 + ``value`` (the versioned example)."""
    shape: list[int | str] = ["batch", 4]
    constant = numpy_helper.from_array(np.array(value, dtype=np.int32), "VERSION")
    return _model(
        [helper.make_node("Add", ["INPUT0", "VERSION"], ["OUTPUT0"])],
        [_tensor("INPUT0", TensorProto.INT32, shape)],
        [_tensor("OUTPUT0", TensorProto.INT32, shape)],
        f"simple_versions_{value}",
        initializers=[constant],
    )


def image_classification_model(
    seed: int = SEED,
    *,
    channels: Sequence[int] = (16, 32, 64),
    convs_per_stage: int = 1,
    name: str = "image_classification_model",
) -> onnx.ModelProto:
    """A small CNN: three stride-2 3x3 convolutions (16, 32, 64 channels) with ReLU, global average pool,
    a 64x1000 fully connected layer and softmax. About 35 M multiply-adds per image: compute-bound enough
    for batching to matter on a CPU, small enough to serve many requests on two cores.

    ``channels`` (one stage each) and ``convs_per_stage`` (the stride-2 convolution, then stride-1 ones of
    the same width) build larger variants of the same design, e.g. the benchmarks' ``medium_cnn``."""
    rng = np.random.default_rng(seed)
    channels = [3, *channels]
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    previous = "INPUT0"
    for i, (cin, cout) in enumerate(itertools.pairwise(channels)):
        for j in range(convs_per_stage):
            conv = f"conv{i}" if j == 0 else f"conv{i}_{j}"
            width_in, stride = (cin, 2) if j == 0 else (cout, 1)
            weight = rng.normal(0.0, np.sqrt(2.0 / (width_in * 9)), size=(cout, width_in, 3, 3)).astype(np.float32)
            bias = rng.normal(0.0, 0.01, size=(cout,)).astype(np.float32)
            initializers += [numpy_helper.from_array(weight, f"{conv}_w"),
                             numpy_helper.from_array(bias, f"{conv}_b")]
            nodes.append(helper.make_node("Conv", [previous, f"{conv}_w", f"{conv}_b"], [conv],
                                          kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1]))
            relu = f"relu{i}" if j == 0 else f"relu{i}_{j}"
            nodes.append(helper.make_node("Relu", [conv], [relu]))
            previous = relu
    fc_w = rng.normal(0.0, np.sqrt(1.0 / channels[-1]), size=(channels[-1], 1000)).astype(np.float32)
    fc_b = rng.normal(0.0, 0.01, size=(1000,)).astype(np.float32)
    initializers += [numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b")]
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["OUTPUT0"], axis=1),
    ]
    return _model(
        nodes,
        [_tensor("INPUT0", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [_tensor("OUTPUT0", TensorProto.FLOAT, ["batch", 1000])],
        name,
        initializers=initializers,
    )


def external_weights_model(out_dir: Path, seed: int = SEED) -> None:
    """``out_dir/model.onnx`` plus ``out_dir/weights.bin``: INPUT0 FP32 [batch, 256] -> OUTPUT0 =
    INPUT0 + W, with W (256 floats from the seed) stored as ONNX external data."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(256,)).astype(np.float32)
    model = _model(
        [helper.make_node("Add", ["INPUT0", "W"], ["OUTPUT0"])],
        [_tensor("INPUT0", TensorProto.FLOAT, ["batch", 256])],
        [_tensor("OUTPUT0", TensorProto.FLOAT, ["batch", 256])],
        "external_weights",
        initializers=[numpy_helper.from_array(weights, "W")],
    )
    tensor = model.graph.initializer[0]
    onnx.external_data_helper.set_external_data(tensor, location="weights.bin", offset=0,
                                                length=weights.nbytes)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    _write(out_dir / "weights.bin", weights.tobytes())
    _write(out_dir / "model.onnx", model.SerializeToString())


def external_weights_values(seed: int = SEED) -> np.ndarray:
    """The W that :func:`external_weights_model` stores (tests compare against it)."""
    return np.random.default_rng(seed).normal(size=(256,)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- configs

SIMPLE_CONFIG = """\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {{
    name: "INPUT0"
    data_type: {type}
    dims: [ 16 ]
  }},
  {{
    name: "INPUT1"
    data_type: {type}
    dims: [ 16 ]
  }}
]
output [
  {{
    name: "OUTPUT0"
    data_type: {type}
    dims: [ 16 ]
  }},
  {{
    name: "OUTPUT1"
    data_type: {type}
    dims: [ 16 ]
  }}
]
"""

IDENTITY_FP32_CONFIG = """\
name: "identity_fp32"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }
]
instance_group [
  {
    count: 1
    kind: KIND_CPU
  }
]
"""

IMAGE_CLASSIFICATION_CONFIG = """\
name: "image_classification_model"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "labels.txt"
  }
]
dynamic_batching {
  preferred_batch_size: [ 16, 32 ]
  max_queue_delay_microseconds: 10000
}
"""

VERSIONS_CONFIG = """\
name: "simple_versions"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { specific: { versions: [ 1, 3 ] } }
input [
  {
    name: "INPUT0"
    data_type: TYPE_INT32
    dims: [ 4 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_INT32
    dims: [ 4 ]
  }
]
"""

NOBATCH_IDENTITY_CONFIG = """\
name: "identity_nobatch_fp32"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ 2, 3 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 2, 3 ]
  }
]
"""

EXTERNAL_WEIGHTS_CONFIG = """\
name: "external_weights"
platform: "onnxruntime_onnx"
max_batch_size: 8
"""

ONNX_TYPES: dict[str, int] = {
    "bool": TensorProto.BOOL,
    "uint8": TensorProto.UINT8,
    "uint16": TensorProto.UINT16,
    "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64,
    "int8": TensorProto.INT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "fp16": TensorProto.FLOAT16,
    "fp32": TensorProto.FLOAT,
    "fp64": TensorProto.DOUBLE,
    "bytes": TensorProto.STRING,
    "bf16": TensorProto.BFLOAT16,
}
"""Every ONNX element type with a Triton datatype, keyed by the lower-case Triton wire name."""

EXAMPLE_MODELS = (
    "simple",
    "simple_string",
    "identity_fp32",
    "image_classification_model",
    "simple_autocomplete",
    "simple_versions",
)
TEST_MODELS = (*(f"auto_identity_{name}" for name in ONNX_TYPES), "identity_nobatch_fp32", "external_weights")


# ---------------------------------------------------------------------------------------------- builders


def build_repository(out: Path) -> list[str]:
    """Write the served example models into ``out``; returns their names."""
    out.mkdir(parents=True, exist_ok=True)
    _write_model(out, "simple", add_sub_model(), SIMPLE_CONFIG.format(name="simple", type="TYPE_INT32"))
    _write_model(out, "simple_string", add_sub_string_model(),
                 SIMPLE_CONFIG.format(name="simple_string", type="TYPE_STRING"))
    _write_model(out, "identity_fp32", identity_model(TensorProto.FLOAT, name="identity_fp32"),
                 IDENTITY_FP32_CONFIG)
    _write_model(out, "image_classification_model", image_classification_model(),
                 IMAGE_CLASSIFICATION_CONFIG)
    _write(out / "image_classification_model" / "labels.txt",
           "".join(f"class_{i}\n" for i in range(1000)))
    _write_model(out, "simple_autocomplete", add_mul_model(), None)
    for version in (1, 2, 3):
        _write_model(out, "simple_versions", add_constant_model(version), VERSIONS_CONFIG, version)
    names = list(EXAMPLE_MODELS) + _sibling("tf_models").build_tf_examples(out)  # TensorFlow SavedModel
    names += _sibling("torch_models").build_torch_examples(out)  # PyTorch: TorchScript and AOTInductor
    return names + _sibling("python_models").build_python_examples(out)  # Python backend (model.py)


def build_test_repository(out: Path) -> list[str]:
    """Write the test-only models into ``out`` (the identity models have no config: auto-completed)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, elem_type in ONNX_TYPES.items():
        _write_model(out, f"auto_identity_{name}", identity_model(elem_type, name=f"auto_identity_{name}"), None)
    _write_model(out, "identity_nobatch_fp32",
                 identity_model(TensorProto.FLOAT, shape=(2, 3), name="identity_nobatch_fp32"),
                 NOBATCH_IDENTITY_CONFIG)
    external_weights_model(out / "external_weights" / "1" / "model.onnx")
    _write(out / "external_weights" / "config.pbtxt", EXTERNAL_WEIGHTS_CONFIG)
    return list(TEST_MODELS)


BUILDERS: dict[str, Callable[[Path], list[str]]] = {"examples": build_repository, "tests": build_test_repository}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the model repository folder to create or update")
    parser.add_argument("--test-models", action="store_true",
                        help="also add the test-only models (identity per datatype, external weights)")
    args = parser.parse_args(argv)
    names = build_repository(args.out_dir)
    if args.test_models:
        names += build_test_repository(args.out_dir)
    print(f"model repository {args.out_dir}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
