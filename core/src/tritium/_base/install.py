"""Install hints that work where the user is: from a source checkout (the plugins are folders beside the
kernel, not on an index) and from an installed kernel (the plugins come from the package index)."""

from __future__ import annotations

import shlex
from pathlib import Path


def _checkout_root() -> Path | None:
    """The repository root when this kernel runs from a source checkout (``<root>/core/src/tritium``), else None."""
    package = Path(__file__).resolve().parent.parent  # .../tritium
    root = package.parents[2]
    layout = package.parent.name == "src" and package.parents[1].name == "core"
    return root if layout and (root / "core" / "pyproject.toml").is_file() and (root / "plugins").is_dir() else None


def install_command(distribution: str, extra: str = "") -> str:
    """The pip command that installs ``distribution`` (with ``extra``, e.g. ``"cpu"``): its folder in this source
    checkout when it has one (``pip install -e <checkout>/plugins/<kind>_<name>[extra]``), else from the index."""
    suffix = f"[{extra}]" if extra else ""
    root = _checkout_root()
    if root is not None and distribution.startswith("tritium-"):
        folder = root / "plugins" / distribution.removeprefix("tritium-").replace("-", "_")
        if (folder / "pyproject.toml").is_file():
            return f"pip install -e {shlex.quote(f'{folder}{suffix}')}"
    return f"pip install {shlex.quote(distribution + suffix)}"
