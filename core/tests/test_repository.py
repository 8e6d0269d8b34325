"""Which installed backend serves a model whose config names none: Triton's rules first, then plugins' files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tritium
from tritium import BackendSpec, ConfigError
from tritium._plugins.host import PluginHost
from tritium._runtime.repository import ModelDirectory, prepare_model


def _factory(_options: Any) -> Any:
    raise AssertionError("not created: only resolution is tested")


class Backends:
    """A plugin registering the given backend specs."""

    def __init__(self, *specs: BackendSpec) -> None:
        self.specs = list(specs)

    @tritium.hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        return self.specs


ONNX = BackendSpec("onnxruntime", _factory, "model.onnx", platforms=("onnxruntime_onnx",))
ACME = BackendSpec("acme", _factory, "model.acme")  # a third-party backend Triton's rules do not know
# Backends under Triton's names (as real plugins register them), and the third-party one.
TRITON_NAMED = Backends(
    ONNX,
    BackendSpec("python", _factory, "model.py"),
    BackendSpec("tensorflow", _factory, "model.savedmodel", platforms=("tensorflow_savedmodel",)),
    ACME,
)


def resolve(repo: Path, name: str, plugin: Backends = TRITON_NAMED) -> tuple[str, str]:
    """(backend, platform) that loading model ``name`` of ``repo`` would use."""
    host = PluginHost(extra_plugins=[("backends", plugin)], discover=False)
    host.load()
    options = tritium.ServerOptions(model_repositories=(str(repo),), auto_complete_config=False)
    prepared = prepare_model(ModelDirectory(name, repo / name, repo), host, options)
    return prepared.config.backend, prepared.config.platform


def files(model_dir: Path, version: str, *names: str) -> None:
    folder = model_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith("/"):
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(b"")


def test_triton_precedence_decides_between_model_files(tmp_path: Path) -> None:
    # Triton tries TensorFlow before Python: a plain listing order ("model.py" < "model.savedmodel") would not.
    files(tmp_path / "m", "1", "model.py", "model.savedmodel/")
    assert resolve(tmp_path, "m") == ("tensorflow", "tensorflow_savedmodel")


def test_triton_looks_into_the_first_folder_by_name(tmp_path: Path) -> None:
    files(tmp_path / "m", "1", "model.py")
    files(tmp_path / "m", "2", "model.onnx")
    assert resolve(tmp_path, "m")[0] == "python"


def test_a_triton_backend_that_is_not_installed_falls_back_to_the_files_plugins_know(tmp_path: Path) -> None:
    files(tmp_path / "m", "1", "model.savedmodel/", "model.onnx")
    assert resolve(tmp_path, "m", Backends(ONNX, ACME)) == ("onnxruntime", "onnxruntime_onnx")


def test_third_party_backends_are_found_by_their_model_file(tmp_path: Path) -> None:
    files(tmp_path / "m", "3", "model.acme")
    assert resolve(tmp_path, "m")[0] == "acme"


def test_a_folder_named_model_dot_backend_selects_that_backend(tmp_path: Path) -> None:
    files(tmp_path / "m.acme", "1")
    assert resolve(tmp_path, "m.acme")[0] == "acme"


def test_the_config_names_the_backend_before_any_file_is_looked_at(tmp_path: Path) -> None:
    files(tmp_path / "m", "1", "model.onnx")
    (tmp_path / "m" / "config.pbtxt").write_text('backend: "python"\n')
    assert resolve(tmp_path, "m")[0] == "python"


def test_nothing_to_go_by_is_a_config_error(tmp_path: Path) -> None:
    files(tmp_path / "m", "1", "weights.bin")
    with pytest.raises(ConfigError, match="unable to determine the backend of model 'm'"):
        resolve(tmp_path, "m")


TENSORFLOW_BOTH = Backends(
    ONNX,
    BackendSpec(
        "tensorflow", _factory, "model.savedmodel", platforms=("tensorflow_savedmodel", "tensorflow_graphdef")
    ),
)


def test_the_platform_is_the_one_triton_infers_from_the_files(tmp_path: Path) -> None:
    """A folder holding only ``model.graphdef`` is ``tensorflow_graphdef``, not the backend's first platform."""
    files(tmp_path / "g", "1", "model.graphdef")
    files(tmp_path / "s", "1", "model.savedmodel/")
    assert resolve(tmp_path, "g", TENSORFLOW_BOTH) == ("tensorflow", "tensorflow_graphdef")
    assert resolve(tmp_path, "s", TENSORFLOW_BOTH) == ("tensorflow", "tensorflow_savedmodel")
    (tmp_path / "b" / "1").mkdir(parents=True)
    (tmp_path / "b" / "config.pbtxt").write_text('backend: "tensorflow"\n')
    assert resolve(tmp_path, "b", TENSORFLOW_BOTH)[1] == "tensorflow_savedmodel"  # nothing to infer from
