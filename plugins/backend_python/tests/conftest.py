"""Fixtures of the Python backend's tests: model folders copied from ``tests/models`` (model.py files
written the way Triton's documentation writes them) or written by a test, and a backend to load them.

Test modules run with ``--import-mode=importlib`` and cannot import each other, so helpers are fixtures.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig

MODELS = Path(__file__).parent / "models"


def parse_config(text: str = "") -> ModelConfig:
    return text_format.Parse(text, ModelConfig())


def source_of(model_dir: Path, version: int = 1) -> ModelSource:
    version_dir = model_dir / str(version)
    return ModelSource(
        name=model_dir.name, version=version, model_dir=model_dir, version_dir=version_dir,
        model_file=version_dir / "model.py",
    )


def cpu_placement(index: int = 0) -> InstancePlacement:
    return InstancePlacement(name=f"group_{index}", kind="CPU", device_id=0, group_name="group", index=index)


def with_parameters(config: ModelConfig, **parameters: str) -> ModelConfig:
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


@pytest.fixture
def model_copy(tmp_path: Path) -> Callable[..., tuple[ModelSource, ModelConfig]]:
    """``model_copy(name, folder_name=None, **parameters) -> (source, config)``: a copy of tests/models/<name>
    under tmp_path, its config.pbtxt parsed (empty when it has none) plus the given config parameters, and
    ``backend: "python"`` as the kernel sets it before auto-complete."""

    def copy(name: str, folder_name: str | None = None, **parameters: str) -> tuple[ModelSource, ModelConfig]:
        target = tmp_path / (folder_name or name)
        shutil.copytree(MODELS / name, target)
        config_file = target / "config.pbtxt"
        config = parse_config(config_file.read_text()) if config_file.is_file() else parse_config()
        config.name = target.name
        config.backend = "python"
        return source_of(target), with_parameters(config, **parameters)

    return copy


@pytest.fixture
def model_from_source(tmp_path: Path) -> Callable[..., tuple[ModelSource, ModelConfig]]:
    """``model_from_source(name, model_py, config_text="", **parameters) -> (source, config)``: a model
    folder written from source text (dedented)."""

    def write(name: str, model_py: str, config_text: str = "", **parameters: str) -> tuple[ModelSource, ModelConfig]:
        target = tmp_path / name
        (target / "1").mkdir(parents=True)
        (target / "1" / "model.py").write_text(textwrap.dedent(model_py))
        config = parse_config(config_text)
        config.name = name
        config.backend = "python"
        return source_of(target), with_parameters(config, **parameters)

    return write


@pytest.fixture
def backend() -> Any:
    from tritium_backend_python import PythonBackend

    return PythonBackend({})


@pytest.fixture
def load(backend: Any) -> Iterator[Callable[..., tuple[ModelConfig, Any]]]:
    """``load(source, config) -> (normalized config, instance)``; instances are closed after the test."""
    from tritium.config import normalize_model_config

    instances: list[Any] = []

    def run(source: ModelSource, config: ModelConfig, index: int = 0) -> tuple[ModelConfig, Any]:
        completed = backend.auto_complete_config(source, config)
        normalized = normalize_model_config(completed, model_name=source.name, source=str(source.model_dir))
        instance = backend.create_instance(source, normalized, cpu_placement(index))
        instances.append(instance)
        return normalized, instance

    yield run
    for instance in instances:
        instance.close()
