"""Which backend serves a model: Triton's ``AutoCompleteBackendFields``.

Fills ``name``, ``backend``, ``platform`` and ``default_model_filename`` from each other and, when the
repository passes the listing of a version directory, from the model file names found there. Only fills
what is empty; the rules and their order are Triton's (core ``model_config_utils.cc``).
"""

from __future__ import annotations

from collections.abc import Mapping

from tritium._model_config.errors import Problem
from tritium.proto.model_config_pb2 import ModelConfig

TENSORFLOW = "tensorflow"
TENSORRT = "tensorrt"
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
PYTORCH = "pytorch"
PYTHON = "python"

TF_SAVEDMODEL_PLATFORM = "tensorflow_savedmodel"
TF_GRAPHDEF_PLATFORM = "tensorflow_graphdef"
TENSORRT_PLATFORM = "tensorrt_plan"
ONNX_PLATFORM = "onnxruntime_onnx"
LIBTORCH_PLATFORM = "pytorch_libtorch"
LIBTORCH_PLATFORM_ALT = "libtorch"
TORCH_AOTI_PLATFORM = "torch_aoti"
ENSEMBLE_PLATFORM = "ensemble"

TF_SAVEDMODEL_FILE = "model.savedmodel"
TF_GRAPHDEF_FILE = "model.graphdef"
TENSORRT_FILE = "model.plan"
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"
LIBTORCH_FILE = "model.pt"
TORCH_AOTI_FILE = "model.pt2"
PYTHON_FILE = "model.py"

Entries = Mapping[str, bool]
"""A version directory's listing: entry name -> whether it is a directory."""


def complete_backend_fields(config: ModelConfig, model_name: str, entries: Entries | None) -> None:
    """Fill the backend fields of ``config`` in place; ``entries`` is None when no version dir exists.

    Raises Problem when nothing names a backend and the model name is not ``<name>.<backend>``.
    """
    if not config.name:
        config.name = model_name
    for step in (_tensorflow, _tensorrt, _onnxruntime, _openvino, _pytorch, _python):
        if step(config, entries):
            return
    _custom(config, model_name)


def _version_probe(config: ModelConfig, entries: Entries | None) -> Entries:
    """The listing to look at: only when platform and default file leave the choice open."""
    if entries is None or config.platform or config.default_model_filename:
        return {}
    return entries


def _tensorflow(config: ModelConfig, entries: Entries | None) -> bool:
    if not config.platform and config.backend in ("", TENSORFLOW):
        if config.default_model_filename == TF_SAVEDMODEL_FILE:
            config.platform = TF_SAVEDMODEL_PLATFORM
        elif config.default_model_filename == TF_GRAPHDEF_FILE:
            config.platform = TF_GRAPHDEF_PLATFORM
        else:
            probe = _version_probe(config, entries)
            if probe.get(TF_SAVEDMODEL_FILE) is True:
                config.platform = TF_SAVEDMODEL_PLATFORM
            if probe.get(TF_GRAPHDEF_FILE) is False:
                config.platform = TF_GRAPHDEF_PLATFORM
    if config.platform not in (TF_SAVEDMODEL_PLATFORM, TF_GRAPHDEF_PLATFORM):
        return False
    config.backend = config.backend or TENSORFLOW
    if not config.default_model_filename:
        saved = config.platform == TF_SAVEDMODEL_PLATFORM
        config.default_model_filename = TF_SAVEDMODEL_FILE if saved else TF_GRAPHDEF_FILE
    return True


def _tensorrt(config: ModelConfig, entries: Entries | None) -> bool:
    named = config.platform == TENSORRT_PLATFORM or config.default_model_filename == TENSORRT_FILE
    if not config.backend and (named or _version_probe(config, entries).get(TENSORRT_FILE) is False):
        config.backend = TENSORRT
    if config.backend != TENSORRT:
        return False
    config.platform = config.platform or TENSORRT_PLATFORM
    config.default_model_filename = config.default_model_filename or TENSORRT_FILE
    return True


def _onnxruntime(config: ModelConfig, entries: Entries | None) -> bool:
    named = config.platform == ONNX_PLATFORM or config.default_model_filename == ONNX_FILE
    # model.onnx may be a file or, for a large model, a directory
    if not config.backend and (named or ONNX_FILE in _version_probe(config, entries)):
        config.backend = ONNXRUNTIME
    if config.backend != ONNXRUNTIME:
        return False
    config.platform = config.platform or ONNX_PLATFORM
    config.default_model_filename = config.default_model_filename or ONNX_FILE
    return True


def _openvino(config: ModelConfig, entries: Entries | None) -> bool:
    named = config.default_model_filename == OPENVINO_FILE
    if not config.backend and (named or OPENVINO_FILE in _version_probe(config, entries)):
        config.backend = OPENVINO
    if config.backend != OPENVINO:
        return False
    config.default_model_filename = config.default_model_filename or OPENVINO_FILE
    return True


def _pytorch(config: ModelConfig, entries: Entries | None) -> bool:
    if not config.backend:
        probe = _version_probe(config, entries)
        platforms = (LIBTORCH_PLATFORM, LIBTORCH_PLATFORM_ALT, TORCH_AOTI_PLATFORM)
        if config.platform in platforms or config.default_model_filename in (LIBTORCH_FILE, TORCH_AOTI_FILE):
            config.backend = PYTORCH
        elif LIBTORCH_FILE in probe:
            if probe[LIBTORCH_FILE] is False:
                config.backend, config.platform = PYTORCH, LIBTORCH_PLATFORM
        elif probe.get(TORCH_AOTI_FILE) is False:
            config.backend, config.platform = PYTORCH, TORCH_AOTI_PLATFORM
    if config.backend != PYTORCH:
        return False
    if not config.platform:
        config.platform = LIBTORCH_PLATFORM
        config.default_model_filename = config.default_model_filename or LIBTORCH_FILE
    elif config.platform == TORCH_AOTI_PLATFORM and not config.default_model_filename:
        config.default_model_filename = TORCH_AOTI_FILE
    return True


def _python(config: ModelConfig, entries: Entries | None) -> bool:
    named = config.default_model_filename == PYTHON_FILE
    if not config.backend and (named or PYTHON_FILE in _version_probe(config, entries)):
        config.backend = PYTHON
    if config.backend != PYTHON:
        return False
    config.default_model_filename = config.default_model_filename or PYTHON_FILE
    return True


def _custom(config: ModelConfig, model_name: str) -> None:
    """Nothing else applied: a model named ``<name>.<backend>`` selects a custom backend."""
    if config.backend or config.platform or config.default_model_filename:
        return
    dot = model_name.find(".")
    if dot < 0:
        raise Problem(
            "backend",
            f"Invalid model name: Could not determine backend for model '{model_name}' with no backend in "
            "model configuration. Expected model name of the form 'model.<backend_name>'.",
        )
    config.backend = model_name[dot + 1 :]
    config.default_model_filename = f"model.{config.backend}"
