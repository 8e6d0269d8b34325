"""Install hints name a command that works where the kernel runs: the plugin's folder in a source checkout,
the package index otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

import tritium._base.install as install
from tritium import install_command


def test_from_a_source_checkout_the_hint_installs_the_plugin_folder() -> None:
    root = Path(install.__file__).resolve().parents[4]  # <root>/core/src/tritium/_base/install.py
    assert install_command("tritium-frontend-grpc") == f"pip install -e {root / 'plugins' / 'frontend_grpc'}"
    onnx = root / "plugins" / "backend_onnx"
    assert install_command("tritium-backend-onnx", "cpu") == f"pip install -e '{onnx}[cpu]'"
    assert (root / "plugins" / "frontend_grpc" / "pyproject.toml").is_file()


def test_a_distribution_without_a_folder_here_comes_from_the_index() -> None:
    assert install_command("tritium-backend-nothere") == "pip install tritium-backend-nothere"
    assert install_command("absent-fw", "gpu") == "pip install 'absent-fw[gpu]'"


def test_an_installed_kernel_names_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "_checkout_root", lambda: None)
    assert install_command("tritium-frontend-grpc") == "pip install tritium-frontend-grpc"
    assert install_command("tritium-backend-onnx", "cpu") == "pip install 'tritium-backend-onnx[cpu]'"
