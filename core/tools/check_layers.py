"""The kernel's layer rule: a module imports only modules of its own layer or of lower layers.

Layers, lowest first (see docs/architecture.md, "Kernel layout"):

0. ``tritium._base`` (the data model) and ``tritium.proto`` (the generated ModelConfig schema)
1. the public contracts: ``tritium.protocol``, ``tritium.codec``, ``tritium.hookspecs``, ``tritium.abc``
2. model configuration: ``tritium._model_config`` and its public face ``tritium.config``
3. the plugin host: ``tritium._plugins``
4. the runtime: ``tritium._runtime``
5. the process model of ``--workers``: ``tritium._multiproc``
6. the command line: ``tritium._cli``
7. the conformance kit: ``tritium.testing``

The package ``tritium`` itself (its ``__init__``, the public API) and ``tritium._pytest_plugin`` sit above all
of them. Imports under ``if TYPE_CHECKING:`` are annotations only and are not checked; imports inside
functions are. Run: ``python core/tools/check_layers.py`` (``make lint`` does); exit status 1 lists every
import that goes up.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tritium"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tritium._base", "tritium.proto"),
    ("tritium.protocol", "tritium.codec", "tritium.hookspecs", "tritium.abc"),
    ("tritium._model_config", "tritium.config"),
    ("tritium._plugins",),
    ("tritium._runtime",),
    ("tritium._multiproc",),
    ("tritium._cli",),
    ("tritium.testing",),
)
UNRANKED = ("tritium._pytest_plugin",)  # above every layer, like the package's __init__


def layer_of(module: str) -> int | None:
    """The layer index of a module name (None: the package itself, or above every layer)."""
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a ``tritium`` module outside ``if TYPE_CHECKING:`` blocks."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "tritium":
                    for alias in child.names:
                        yield child.lineno, f"tritium.{alias.name}"
                elif child.module.startswith("tritium."):
                    yield child.lineno, child.module
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("tritium."):
                        yield child.lineno, alias.name
            stack.append(child)


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import from a lower layer into a higher one, as ``file:line: message``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        module = module_name(path, package)
        own = layer_of(module)
        if own is None or module in UNRANKED:
            continue
        for line, imported in _runtime_imports(ast.parse(path.read_text(), str(path))):
            target = layer_of(imported)
            if target is None:
                target = len(LAYERS)  # the public package itself (tritium.<name> re-exported from above)
                if imported.split(".")[1] in {"abc", "codec", "protocol", "hookspecs", "config", "testing"}:
                    continue
            if target > own:
                found.append(
                    f"{path.relative_to(package.parent)}:{line}: {module} (layer {own}) imports {imported} "
                    f"(layer {target}): a lower layer never imports a higher one"
                )
    return found


def main() -> int:
    problems = violations()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} import(s) break the kernel's layering (core/tools/check_layers.py)")
        return 1
    print("kernel layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
