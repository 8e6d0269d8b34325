"""The plugin: its entry point, its BackendSpec, a cheap import, and availability without ONNX Runtime."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

from tritium_backend_onnx import OnnxBackend, plugin
from tritium_backend_onnx._backend import INSTALL_HINT

from tritium import BackendSpec, install_command
from tritium.testing import PluginPackagingConformance


def test_entry_point_names_the_plugin_module():
    points = importlib.metadata.entry_points(group="tritium.plugins")
    matches = [p for p in points if p.name == "backend_onnx"]
    assert len(matches) == 1
    assert matches[0].value == "tritium_backend_onnx.plugin"
    assert matches[0].dist is not None and matches[0].dist.name == "tritium-backend-onnx"


def test_backend_spec():
    (spec,) = plugin.tritium_register_backends()
    assert isinstance(spec, BackendSpec)
    assert spec.name == "onnxruntime"
    assert list(spec.platforms) == ["onnxruntime_onnx"]
    assert spec.default_model_filename == "model.onnx"
    backend = spec.factory({"default-max-batch-size": "7"})
    assert isinstance(backend, OnnxBackend)
    assert backend.default_max_batch_size == 7
    assert spec.availability is not None and spec.availability() is None
    assert backend.availability() is None


def test_importing_the_plugin_does_not_import_onnxruntime():
    code = (
        "import sys, tritium_backend_onnx.plugin as p; "
        "(spec,) = p.tritium_register_backends(); spec.availability(); spec.factory({}); "
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'; "
        "assert 'onnx' not in sys.modules, 'onnx was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_availability_without_onnxruntime_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "onnxruntime" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert OnnxBackend({}).availability() == INSTALL_HINT
    (spec,) = plugin.tritium_register_backends()
    assert spec.availability() == INSTALL_HINT
    assert install_command("tritium-backend-onnx", "cpu") in INSTALL_HINT
    assert "tritium-backend-onnx[cpu]" in INSTALL_HINT or "backend_onnx[cpu]" in INSTALL_HINT


class TestOnnxPackaging(PluginPackagingConformance):
    """The kernel's packaging checks: distribution, entry point, specs, and no framework import at load."""

    distribution = "tritium-backend-onnx"
    entry_point = "backend_onnx"
