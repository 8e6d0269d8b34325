"""ONNX models the benchmarks build themselves (nothing is downloaded), beside the example repository's."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

EXAMPLES_BUILDER = Path(__file__).resolve().parents[1] / "examples" / "build_repository.py"


def _examples_builder() -> ModuleType:
    """examples/build_repository.py as a module (it is a script, not an installed package)."""
    spec = importlib.util.spec_from_file_location("tritium_examples_builder", EXAMPLES_BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def medium_cnn() -> bytes:
    """The example ``image_classification_model`` design grown to about a quarter of ResNet-18's compute:
    three stages (32, 64, 128 channels) of a stride-2 and a stride-1 3x3 convolution with ReLU, global
    average pool, 128x1000 fully connected layer, softmax. FP32 [batch,3,224,224] -> [batch,1000], about
    0.47 G multiply-adds per image (13x the example): compute-bound, where the per-request cost of serving
    is small beside the model's own work."""
    builder = _examples_builder()
    model = builder.image_classification_model(channels=(32, 64, 128), convs_per_stage=2, name="medium_cnn")
    return bytes(model.SerializeToString())


def write_medium_cnn(path: Path) -> Path:
    """Write :func:`medium_cnn` to ``path`` (creating its folder) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(medium_cnn())
    return path


def mlp(sizes: tuple[int, ...] = (512, 2048, 2048, 512), seed: int = 0) -> bytes:
    """A fully connected network, FP32 [batch, sizes[0]] -> [batch, sizes[-1]] (``INPUT0`` -> ``OUTPUT0``),
    ReLU between layers, seeded random weights. The default 512-2048-2048-512 has about 5.2 M multiply-adds
    per row: compute-bound per request yet cheap enough that batching, not the model, decides throughput
    (bench/multiprocess.py serves it with dynamic batching)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights, current = [], [], "INPUT0"
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        weights += [numpy_helper.from_array(w, f"w{layer}"), numpy_helper.from_array(b, f"b{layer}")]
        last = layer == len(sizes) - 2
        nodes.append(helper.make_node("MatMul", [current, f"w{layer}"], [f"mm{layer}"]))
        nodes.append(helper.make_node("Add", [f"mm{layer}", f"b{layer}"], ["OUTPUT0" if last else f"add{layer}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"add{layer}"], [f"relu{layer}"]))
            current = f"relu{layer}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", sizes[-1]])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
