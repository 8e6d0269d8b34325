"""EXECUTION_ENV_PATH: a model's stub runs with another environment's interpreter (a folder, as Tritium adds,
or a packed .tar.gz, as Triton takes), and an unusable environment is a clear load error."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tritium import Batch, ConfigError, DataType, InferenceRequest, Tensor

pytestmark = pytest.mark.timeout(180)

CONFIG = """
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "ENV" data_type: TYPE_STRING dims: [ 1 ] } ]
"""

MODEL = '''
import os
import sys
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        mark = os.environ.get("TRITIUM_TEST_ENV", "none") + "|" + sys.prefix
        return [pb_utils.InferenceResponse([pb_utils.Tensor("ENV", np.array([mark.encode()], dtype=object))])
                for _ in requests]
'''

def make_env(folder: Path, mark: str) -> Path:
    """An environment folder whose bin/python runs this test's interpreter with a marker variable set."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexport TRITIUM_TEST_ENV="{mark}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return folder

def env_of(instance) -> str:
    request = InferenceRequest(model_name="m", inputs={"X": Tensor("X", DataType.INT32, np.array([1], np.int32))})
    outputs = instance.execute(Batch({"X": np.array([1], np.int32)}, frozenset({"ENV"}), [request], 0))
    return outputs["ENV"][0].decode()

def test_an_environment_folder_runs_the_stub(model_from_source, load, tmp_path):
    env = make_env(tmp_path / "envs" / "folder-env", "folder")
    source, config = model_from_source("m", MODEL, CONFIG, EXECUTION_ENV_PATH=str(env))
    _, instance = load(source, config)
    assert env_of(instance).startswith("folder|")

def test_the_model_directory_placeholder_and_relative_paths(model_from_source, load):
    source, config = model_from_source("m", MODEL, CONFIG, EXECUTION_ENV_PATH="$$TRITON_MODEL_DIRECTORY/env")
    make_env(source.model_dir / "env", "placeholder")
    _, instance = load(source, config)
    assert env_of(instance).startswith("placeholder|")

def test_a_packed_archive_is_unpacked_and_used(model_from_source, load, tmp_path):
    env = make_env(tmp_path / "to-pack", "archive")
    archive = tmp_path / "env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(env, arcname=".")
    source, config = model_from_source("m", MODEL, CONFIG, EXECUTION_ENV_PATH=str(archive))
    _, instance = load(source, config)
    assert env_of(instance).startswith("archive|")

def test_unusable_environments_are_config_errors(model_from_source, backend, tmp_path):

    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    not_an_env = tmp_path / "plain.txt"
    not_an_env.write_text("x")
    empty = tmp_path / "empty-env"
    empty.mkdir()
    broken_archive = tmp_path / "broken.tar.gz"
    broken_archive.write_bytes(b"not a tar archive")
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(not_an_env): "neither an environment folder nor",
        str(empty): "has no bin/python",
        str(broken_archive): "cannot be unpacked",
        str(bare): "numpy",
    }
    for index, (path, message) in enumerate(cases.items()):
        source, config = model_from_source(f"m{index}", MODEL, CONFIG, EXECUTION_ENV_PATH=path)
        with pytest.raises(ConfigError, match=message):
            backend.create_instance(source, config, _placement())

def test_environments_need_the_isolated_mode(model_from_source, backend, tmp_path):
    source, config = model_from_source("m", MODEL, CONFIG, EXECUTION_ENV_PATH=str(tmp_path),
                                       TRITIUM_EXECUTION_MODE="in-process")
    with pytest.raises(ConfigError, match="isolated"):
        backend.create_instance(source, config, _placement())

def _placement():
    from tritium import InstancePlacement

    return InstancePlacement(name="m_0", kind="CPU", device_id=0, group_name="m", index=0)


def test_a_planted_stub_folder_is_not_used(tmp_path, monkeypatch):
    """The stub's PYTHONPATH folder lives under a predictable name in the shared temporary directory: a
    folder found there is used only when it is this user's, private, and links to this installation."""
    import tempfile

    from tritium_backend_python import _stub_process

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = Path(_stub_process.stub_pythonpath())
    assert first.parent == tmp_path
    assert {p.name for p in first.iterdir()} == {"triton_python_backend_utils.py", "tritium_backend_python"}
    assert Path(_stub_process.stub_pythonpath()) == first  # reused
    (first / "triton_python_backend_utils.py").unlink()
    (first / "triton_python_backend_utils.py").symlink_to(tmp_path / "evil.py")  # planted
    second = Path(_stub_process.stub_pythonpath())
    assert second != first
    assert os.readlink(second / "triton_python_backend_utils.py") != str(tmp_path / "evil.py")
