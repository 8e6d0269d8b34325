"""ONNX models the benchmarks build themselves (nothing is downloaded), beside the example repository's."""

from __future__ import annotations

import importlib.util
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
