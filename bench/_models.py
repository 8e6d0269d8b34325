"""ONNX models the benchmarks build themselves (nothing is downloaded), beside the example repository's."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np


def medium_cnn(seed: int = 0) -> bytes:
    """A CNN with about a quarter of ResNet-18's compute: three stages (32, 64, 128 channels), each a stride-2
    3x3 convolution and a stride-1 3x3 convolution with ReLU, global average pool, 128x1000 fully connected
    layer, softmax. FP32 [batch,3,224,224] -> [batch,1000], about 0.47 G multiply-adds per image (13x the
    example ``image_classification_model``): compute-bound, where the per-request cost of serving is small
    beside the model's own work."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    previous = "INPUT0"

    def conv(name: str, cin: int, cout: int, stride: int) -> None:
        nonlocal previous
        weight = rng.normal(0.0, np.sqrt(2.0 / (cin * 9)), size=(cout, cin, 3, 3)).astype(np.float32)
        bias = rng.normal(0.0, 0.01, size=(cout,)).astype(np.float32)
        initializers.extend([numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")])
        nodes.append(
            helper.make_node(
                "Conv", [previous, f"{name}_w", f"{name}_b"], [name],
                kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [name], [f"{name}_relu"]))
        previous = f"{name}_relu"

    for stage, (cin, cout) in enumerate(itertools.pairwise([3, 32, 64, 128])):
        conv(f"stage{stage}_down", cin, cout, 2)
        conv(f"stage{stage}_conv", cout, cout, 1)
    fc_w = rng.normal(0.0, np.sqrt(1.0 / 128), size=(128, 1000)).astype(np.float32)
    fc_b = rng.normal(0.0, 0.01, size=(1000,)).astype(np.float32)
    initializers += [numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b")]
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["OUTPUT0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "medium_cnn",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 1000])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_medium_cnn(path: Path) -> Path:
    """Write :func:`medium_cnn` to ``path`` (creating its folder) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(medium_cnn())
    return path
