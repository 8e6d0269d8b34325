"""The kernel's layout: a dozen public and top-level modules, private layers below them, and the layer rule
(``core/tools/check_layers.py``, run by ``make lint``): lower layers never import higher ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_layers.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kernel_keeps_its_layers() -> None:
    assert load_tool().violations() == []


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    tool = load_tool()
    package = tmp_path / "tritium"
    for folder in ("_runtime", "_cli", "_base"):
        (package / folder).mkdir(parents=True)
    (package / "_runtime" / "up.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from tritium._base.errors import TritiumError\n"
        "if TYPE_CHECKING:\n    from tritium._cli.commands import run\n"  # annotations only: allowed
        "def later():\n    from tritium._cli.commands import main\n"
    )
    (package / "_base" / "down.py").write_text("import tritium._runtime.lifecycle\n")
    problems = tool.violations(package)
    assert len(problems) == 2, problems
    assert "tritium._runtime.up (layer 4) imports tritium._cli.commands (layer 6)" in problems[1]
    assert "tritium._base.down (layer 0) imports tritium._runtime.lifecycle (layer 4)" in problems[0]


def test_about_a_dozen_top_level_names() -> None:
    package = Path(load_tool().PACKAGE)
    top = sorted(p.name for p in package.iterdir() if not p.name.startswith(".") and p.name != "__pycache__")
    flat_private = [n for n in top if n.startswith("_") and n.endswith(".py") and n not in ("__init__.py",)]
    assert flat_private == ["_pytest_plugin.py"], flat_private
    assert len(top) <= 16, top
