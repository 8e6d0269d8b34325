"""Fixtures of the TensorRT backend's tests: the TensorRT test double, fake plan files, configs, placements.

The double (``fake_tensorrt.py``) is loaded by path: tests reach it through the ``fake`` fixture.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig, normalize_model_config, parse_model_config

_HERE = Path(__file__).resolve().parent


def _load_fake() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tritium_tests_fake_tensorrt", _HERE / "fake_tensorrt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAKE = _load_fake()


@pytest.fixture
def fake() -> ModuleType:
    """The ``fake_tensorrt`` module (``make_fake``, ``plan_bytes``, ``FakeDevice``, ...)."""
    return FAKE


def make_backend(options: dict[str, str] | None = None, device: Any = None) -> tuple[Any, Any, Any]:
    """(backend, trt double, device double): a TensorRTBackend whose loader returns the doubles."""
    from tritium_backend_tensorrt import TensorRTBackend

    trt, dev = FAKE.make_fake(device)
    backend = TensorRTBackend(options or {}, loader=lambda: (trt, dev), availability_check=lambda: None)
    return backend, trt, dev


@pytest.fixture
def fake_backend() -> tuple[Any, Any, Any]:
    return make_backend()


def parse_config(text: str = "", name: str = "") -> ModelConfig:
    config = parse_model_config(text)
    if name and not config.name:
        config.name = name
    return config


@pytest.fixture
def config_from() -> Callable[..., ModelConfig]:
    return parse_config


def write_plan(root: Path, name: str, spec: dict[str, Any] | bytes, version: int = 1,
               filename: str = "model.plan") -> ModelSource:
    """A model folder ``root/name/<version>/<filename>`` holding a fake plan (or the given bytes)."""
    version_dir = root / name / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    content = spec if isinstance(spec, bytes) else FAKE.plan_bytes(spec)
    (version_dir / filename).write_bytes(content)
    return ModelSource(
        name=name, version=version, model_dir=root / name, version_dir=version_dir,
        model_file=version_dir / "model.plan",
    )


@pytest.fixture
def plan_writer(tmp_path: Path) -> Callable[..., ModelSource]:
    def write(name: str, spec: dict[str, Any] | bytes, **kwargs: Any) -> ModelSource:
        return write_plan(tmp_path, name, spec, **kwargs)

    return write


def gpu_placement(config: Any, index: int = 0, device_id: int = 0, group: int = 0) -> InstancePlacement:
    """The placement the kernel gives instance ``index`` of instance group ``group`` on a GPU."""
    group_name = config.instance_group[group].name if len(config.instance_group) > group else f"{config.name}_{group}"
    return InstancePlacement(f"{group_name}_{index}", "GPU", device_id, group_name, index)


def load_config(backend: Any, source: ModelSource, config: ModelConfig, gpu_count: int = 2) -> ModelConfig:
    """What the kernel loads: named, auto-completed by the backend, normalized with ``gpu_count`` GPUs."""
    config.name = config.name or source.name
    if not config.backend and not config.platform:
        config.backend, config.platform = "tensorrt", "tensorrt_plan"  # what the kernel resolves first
    completed = backend.auto_complete_config(source, config)
    return normalize_model_config(completed, model_name=source.name, source=str(source.model_dir), gpu_count=gpu_count)


# ------------------------------------------------------------------------------------------ engine specs
def add_sub_spec(dtype: str = "FLOAT", width: int = 4, profiles: list[dict[str, Any]] | None = None,
                 batch: bool = True) -> dict[str, Any]:
    """Two inputs, OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1 (Triton's 'simple' model)."""
    shape = [-1, width] if batch else [2, width]
    default = [[[1, width], [4, width], [8, width]]] * 2 if batch else [[[2, width]] * 3] * 2
    return {
        "tensors": [
            {"name": "INPUT0", "mode": "INPUT", "dtype": dtype, "shape": shape},
            {"name": "INPUT1", "mode": "INPUT", "dtype": dtype, "shape": shape},
            {"name": "OUTPUT0", "mode": "OUTPUT", "dtype": dtype, "shape": shape},
            {"name": "OUTPUT1", "mode": "OUTPUT", "dtype": dtype, "shape": shape},
        ],
        "profiles": profiles or [{"INPUT0": default[0], "INPUT1": default[1]}],
        "compute": {"OUTPUT0": ["add", "INPUT0", "INPUT1"], "OUTPUT1": ["sub", "INPUT0", "INPUT1"]},
    }


def identity_spec(dtype: str = "FLOAT", shape: list[int] | None = None,
                  profiles: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    shape = shape or [-1, -1]
    return {
        "tensors": [
            {"name": "INPUT0", "mode": "INPUT", "dtype": dtype, "shape": shape},
            {"name": "OUTPUT0", "mode": "OUTPUT", "dtype": dtype, "shape": shape},
        ],
        "profiles": profiles or [{"INPUT0": [[1, 1], [4, 8], [8, 16]]}],
        "compute": {"OUTPUT0": ["identity", "INPUT0"]},
    }


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (which cannot import this conftest by name)."""
    import types

    return types.SimpleNamespace(
        make_backend=make_backend, write_plan=write_plan, gpu_placement=gpu_placement, load_config=load_config,
        parse_config=parse_config, add_sub_spec=add_sub_spec, identity_spec=identity_spec, fake=FAKE,
    )
