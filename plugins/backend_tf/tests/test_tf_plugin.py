"""The plugin: entry point, BackendSpec, availability, and TensorFlow imported only when a model loads."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tritium_backend_tf import TensorFlowBackend, plugin
from tritium_backend_tf._backend import INSTALL_HINT

from tritium import BackendSpec
from tritium.testing import PluginPackagingConformance


def test_entry_point_names_the_plugin_module():
    points = [p for p in importlib.metadata.entry_points(group="tritium.plugins") if p.name == "backend_tf"]
    assert len(points) == 1
    assert points[0].value == "tritium_backend_tf.plugin"
    assert points[0].dist is not None and points[0].dist.name == "tritium-backend-tf"


def test_backend_spec():
    (spec,) = plugin.tritium_register_backends()
    assert isinstance(spec, BackendSpec)
    assert spec.name == "tensorflow"
    assert list(spec.platforms) == ["tensorflow_savedmodel", "tensorflow_graphdef"]
    assert spec.default_model_filename == "model.savedmodel"
    assert list(spec.extra_model_filenames) == ["model.graphdef"]
    backend = spec.factory({"default-max-batch-size": "7", "allow-soft-placement": "false"})
    assert isinstance(backend, TensorFlowBackend)
    assert backend.settings.default_max_batch_size == 7
    assert backend.settings.allow_soft_placement is False
    assert spec.availability is not None and spec.availability() is None
    assert backend.availability() is None


def test_availability_without_tensorflow_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "tensorflow" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert TensorFlowBackend({}).availability() == INSTALL_HINT
    (spec,) = plugin.tritium_register_backends()
    assert spec.availability() == INSTALL_HINT
    assert "pip install 'tritium-backend-tf[cpu]'" in INSTALL_HINT


def test_unspecified_instance_groups_go_to_a_gpu_only_with_a_gpu_build_and_a_gpu(monkeypatch):
    """``supports_gpu`` (the kernel's default placement): False with tensorflow-cpu (here) or without a GPU,
    True with the GPU build on a machine with a visible GPU; TensorFlow is not imported to find out."""
    import tritium_backend_tf._backend as backend_module

    backend = TensorFlowBackend({})
    monkeypatch.setattr(backend_module, "visible_gpu_count", lambda: 1)
    assert backend.supports_gpu() is False  # tensorflow-cpu is what this environment installs
    monkeypatch.setattr(backend_module, "_cpu_only_build", lambda: False)
    assert backend.supports_gpu() is True
    monkeypatch.setattr(backend_module, "visible_gpu_count", lambda: 0)
    assert backend.supports_gpu() is False


IMPORT_PROBE = """
import json, logging, sys, time
from pathlib import Path
records = []
handler = logging.Handler(); handler.emit = lambda r: records.append(r.getMessage())
logging.getLogger("tritium.backend.tensorflow").addHandler(handler)
logging.getLogger("tritium.backend.tensorflow").setLevel(logging.INFO)
import tritium_backend_tf.plugin as p
from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig, normalize_model_config
(spec,) = p.tritium_register_backends(); spec.availability()
backend = spec.factory({})
version_dir = Path(sys.argv[1]) / "simple" / "1"
source = ModelSource("simple", 1, version_dir.parent, version_dir, version_dir / "model.savedmodel")
config = ModelConfig(name="simple", backend="tensorflow", platform="tensorflow_savedmodel")
config = backend.auto_complete_config(source, config)
after_autocomplete = "tensorflow" in sys.modules
config = normalize_model_config(config, model_name="simple", source="probe")
started = time.perf_counter()
instance = backend.create_instance(source, config, InstancePlacement("i", "CPU", 0, "g", 0))
load_seconds = time.perf_counter() - started
instance.close()
print(json.dumps({"after_autocomplete": after_autocomplete, "inputs": len(config.input),
                  "import_seconds": backend.import_seconds, "load_seconds": load_seconds, "log": records}))
"""


def test_tensorflow_is_imported_by_the_first_load_not_by_auto_complete(tf_models, tmp_path):
    """Plugin import, availability, the factory and SavedModel auto-complete import no TensorFlow; the first
    create_instance does, and its import time is part of the load and in the load log."""
    version_dir = tmp_path / "simple" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.savedmodel").symlink_to(tf_models.simple, target_is_directory=True)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["after_autocomplete"] is False
    assert report["inputs"] == 2
    assert report["import_seconds"] > 0.2  # importing TensorFlow takes seconds; a cached import would be ~0
    assert report["load_seconds"] >= report["import_seconds"]
    imported = [line for line in report["log"] if line.startswith("imported TensorFlow")]
    assert len(imported) == 1 and "while loading model 'simple'" in imported[0], report["log"]
    assert any(line.startswith("loaded TensorFlow SavedModel") for line in report["log"]), report["log"]


def test_plugin_module_is_small_and_cheap(tmp_path: Path):
    code = (
        "import sys, time; t = time.perf_counter(); import tritium_backend_tf.plugin as p; "
        "(s,) = p.tritium_register_backends(); s.factory({}); s.availability(); "
        "print(time.perf_counter() - t, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seconds, imported = result.stdout.split()
    assert imported == "False"
    assert float(seconds) < 2.0


class TestTensorFlowPackaging(PluginPackagingConformance):
    """The kernel's packaging checks: distribution, entry point, specs, and no framework import at load."""

    distribution = "tritium-backend-tf"
    entry_point = "backend_tf"
