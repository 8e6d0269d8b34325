"""The plugin: entry point, BackendSpec, a cheap import, and what availability says without TensorRT or a GPU."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

from tritium_backend_tensorrt import TensorRTBackend, plugin
from tritium_backend_tensorrt._availability import (
    INSTALL_CUDA_PYTHON,
    INSTALL_TENSORRT,
    NEEDS_GPU,
    availability,
)

from tritium import BackendSpec
from tritium.testing import PluginPackagingConformance


def test_entry_point_names_the_plugin_module():
    points = [p for p in importlib.metadata.entry_points(group="tritium.plugins") if p.name == "backend_tensorrt"]
    assert len(points) == 1
    assert points[0].value == "tritium_backend_tensorrt.plugin"
    assert points[0].dist is not None and points[0].dist.name == "tritium-backend-tensorrt"


def test_backend_spec():
    (spec,) = plugin.tritium_register_backends()
    assert isinstance(spec, BackendSpec)
    assert spec.name == "tensorrt"
    assert list(spec.platforms) == ["tensorrt_plan"]
    assert spec.default_model_filename == "model.plan"
    assert isinstance(spec.factory({}), TensorRTBackend)


def test_importing_and_asking_imports_no_tensorrt_and_no_cuda():
    code = (
        "import sys, tritium_backend_tensorrt.plugin as p; "
        "(spec,) = p.tritium_register_backends(); spec.availability(); spec.factory({}).availability(); "
        "bad = [m for m in ('tensorrt', 'cuda', 'cuda.bindings', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_availability_names_every_missing_piece():
    def have(*names):
        return lambda module: module in names

    assert availability(installed=have(), binding_installed=lambda: False, gpu_count=lambda: 0) == (
        f"{INSTALL_TENSORRT}; {NEEDS_GPU}"
    )
    assert availability(installed=have("tensorrt"), binding_installed=lambda: False, gpu_count=lambda: 1) == (
        INSTALL_CUDA_PYTHON
    )
    assert availability(installed=have("tensorrt"), binding_installed=lambda: True, gpu_count=lambda: 0) == NEEDS_GPU
    assert availability(installed=have("tensorrt"), binding_installed=lambda: True, gpu_count=lambda: 2) is None
    assert "install tensorrt" in INSTALL_TENSORRT and "needs a CUDA GPU" in NEEDS_GPU


def test_this_machine_reports_the_real_reason():
    """Here (no tensorrt, no GPU) the backend says so; with both it says None."""
    (spec,) = plugin.tritium_register_backends()
    reason = spec.availability()
    if importlib.util.find_spec("tensorrt") is None:
        assert reason is not None and reason.startswith("install tensorrt")


class TestTensorRTPackaging(PluginPackagingConformance):
    distribution = "tritium-backend-tensorrt"
    entry_point = "backend_tensorrt"


def test_groups_without_a_kind_are_placed_on_gpus():
    assert TensorRTBackend({}).supports_gpu() is True
