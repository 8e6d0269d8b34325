"""The plugin: its entry point, its BackendSpec, a cheap import, and packaging conformance."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from tritium_backend_torch import TorchBackend, plugin

from tritium import BackendSpec, ConfigError
from tritium.testing import PluginPackagingConformance


def test_entry_point_names_the_plugin_module():
    points = [p for p in importlib.metadata.entry_points(group="tritium.plugins") if p.name == "backend_torch"]
    assert len(points) == 1
    assert points[0].value == "tritium_backend_torch.plugin"
    assert points[0].dist is not None and points[0].dist.name == "tritium-backend-torch"


def test_backend_spec():
    (spec,) = plugin.tritium_register_backends()
    assert isinstance(spec, BackendSpec)
    assert spec.name == "pytorch"
    assert list(spec.platforms) == ["pytorch_libtorch", "torch_aoti", "libtorch"]
    assert spec.default_model_filename == "model.pt"
    assert list(spec.extra_model_filenames) == ["model.pt2"]
    backend = spec.factory({"aoti-auto-complete": "true"})
    assert isinstance(backend, TorchBackend) and backend.aoti_auto_complete
    assert spec.availability is not None and spec.availability() is None
    with pytest.raises(ConfigError, match="aoti-auto-complete"):
        spec.factory({"aoti-auto-complete": "maybe"})


def test_importing_the_plugin_and_building_the_backend_imports_no_torch():
    code = (
        "import sys, tritium_backend_torch.plugin as p; "
        "(spec,) = p.tritium_register_backends(); spec.factory({}); spec.availability(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


class TestTorchPackaging(PluginPackagingConformance):
    distribution = "tritium-backend-torch"
    entry_point = "backend_torch"
