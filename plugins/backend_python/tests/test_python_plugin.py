"""The plugin: its entry point, its BackendSpec, and a cheap import."""

from __future__ import annotations

import importlib.metadata

from tritium_backend_python import PythonBackend, plugin

from tritium import BackendSpec
from tritium.testing import PluginPackagingConformance


def test_entry_point_names_the_plugin_module():
    points = importlib.metadata.entry_points(group="tritium.plugins")
    matches = [p for p in points if p.name == "backend_python"]
    assert len(matches) == 1
    assert matches[0].value == "tritium_backend_python.plugin"
    assert matches[0].dist is not None and matches[0].dist.name == "tritium-backend-python"


def test_backend_spec():
    (spec,) = plugin.tritium_register_backends()
    assert isinstance(spec, BackendSpec)
    assert spec.name == "python"
    assert list(spec.platforms) == []
    assert spec.default_model_filename == "model.py"
    backend = spec.factory({"execution-mode": "in-process"})
    assert isinstance(backend, PythonBackend)
    assert backend.options == {"execution-mode": "in-process"}
    assert spec.availability is not None and spec.availability() is None


def test_pb_utils_is_importable_by_triton_name():
    import triton_python_backend_utils as pb_utils

    assert pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL == 1
    dist = importlib.metadata.distribution("tritium-backend-python")
    assert "triton_python_backend_utils" in (dist.read_text("top_level.txt") or "").split()


class TestPythonPackaging(PluginPackagingConformance):
    distribution = "tritium-backend-python"
    entry_point = "backend_python"
