"""Python-backend models of the example repository, copied from ``examples/python/`` (each a folder with
config.pbtxt and 1/model.py, written as Triton's Python backend expects them):

- ``image_preprocess``: an RGB image of any size (UINT8 [h, w, 3]) -> the classifier's input FP32
  [3, 224, 224] (resize, scale, normalize, channels first);
- ``token_stream``: a decoupled model streaming the words of TEXT one response at a time;
- ``classify_pipeline``: a BLS pipeline, IMAGE -> image_preprocess -> image_classification_model (ONNX) ->
  LABEL, CLASS_ID, PROBABILITY.

``build_python_examples(out)`` is called by ``examples/build_repository.py``; docs/examples.md shows how to
query each model with tritonclient.
"""

from __future__ import annotations

from pathlib import Path

SOURCES = Path(__file__).resolve().with_name("python")
PYTHON_MODELS = ("image_preprocess", "token_stream", "classify_pipeline")


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` unless the file already holds exactly that (a polling server sees no change)."""
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_python_examples(out: Path) -> list[str]:
    """Copy the Python example models into the repository ``out``; returns their names."""
    for name in PYTHON_MODELS:
        for relative in ("config.pbtxt", "1/model.py"):
            _write(out / name / relative, (SOURCES / name / relative).read_bytes())
    return list(PYTHON_MODELS)
