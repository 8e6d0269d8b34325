"""The kernel alone pulls no web framework, gRPC, ML framework or metrics library."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys

from packaging.requirements import Requirement

FORBIDDEN = {"aiohttp", "grpcio", "onnxruntime", "onnxruntime-gpu", "torch", "tensorflow", "tensorflow-cpu",
             "tensorrt", "prometheus-client"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(distribution: str) -> set[str]:
    """Every distribution installing ``distribution`` (without extras) brings, from installed metadata."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = _normalize(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return seen


def test_kernel_closure_has_no_heavy_dependency() -> None:
    closure = dependency_closure("tritium")
    assert "pluggy" in closure and "numpy" in closure
    assert not closure & FORBIDDEN, closure & FORBIDDEN


def test_importing_the_kernel_imports_no_framework() -> None:
    code = (
        "import sys, tritium, tritium.config, tritium._runtime.server, tritium._cli.commands; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp','grpc','onnxruntime','torch','tensorflow','tensorrt','prometheus_client'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
