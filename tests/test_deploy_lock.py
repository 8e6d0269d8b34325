"""The images' dependency locks (deploy/docker/lock.py) and the build-time selection from them
(deploy/docker/select_locked.py): current with the pyprojects, covering the default plugins, and the
selection steps themselves."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


select = _load("select_locked")
lock = _load("lock")


def test_requirement_inputs_are_current() -> None:
    result = subprocess.run([sys.executable, str(DOCKER / "lock.py"), "--check"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def _default_plugins(dockerfile: str) -> str:
    match = re.search(r'^ARG PLUGINS="([^"]+)"', (DOCKER / dockerfile).read_text(), re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(("dockerfile", "flavour"), [("Dockerfile", "cpu"), ("Dockerfile.gpu", "gpu")])
def test_default_plugins_are_in_the_lock(dockerfile: str, flavour: str) -> None:
    """Every requirement the image's default plugins name is pinned, with hashes, in the flavour's lock."""
    entries = select.locked_entries((DOCKER / "requirements" / f"{flavour}.txt").read_text())
    wanted = select.wanted_requirements(ROOT, _default_plugins(dockerfile))
    assert wanted
    for requirement in wanted:
        name = select._requirement_name(requirement)
        assert name in entries, f"{name} ({requirement}) missing from requirements/{flavour}.txt"
        assert "--hash=sha256:" in entries[name]


def test_every_lock_entry_is_pinned_with_a_hash() -> None:
    for path in (DOCKER / "requirements").glob("*.txt"):
        entries = select.locked_entries(path.read_text())
        assert entries, path
        for name, entry in entries.items():
            assert re.match(r"^[a-z0-9][a-z0-9._-]*==[^\s]+ \\\n", entry), (path.name, name)
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), (path.name, name)


def test_cpu_lock_has_the_cpu_onnxruntime_and_gpu_lock_the_cuda_one() -> None:
    cpu = select.locked_entries((DOCKER / "requirements" / "cpu.txt").read_text())
    gpu = select.locked_entries((DOCKER / "requirements" / "gpu.txt").read_text())
    assert "onnxruntime" in cpu and "onnxruntime-gpu" not in cpu
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu


LOCK_TEXT = """# header
aiohttp==3.9.0 \\
    --hash=sha256:aa
numpy==2.0.0 \\
    --hash=sha256:bb \\
    --hash=sha256:cc
"""


def test_subset_picks_entries_by_normalized_name_and_refuses_a_stale_lock() -> None:
    report = {"install": [{"metadata": {"name": "NumPy"}}]}
    assert select.subset(LOCK_TEXT, report) == ["numpy==2.0.0 \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc\n"]
    with pytest.raises(SystemExit, match="not in the lock: yarl"):
        select.subset(LOCK_TEXT, {"install": [{"metadata": {"name": "yarl"}}]})
    assert select.constraints(LOCK_TEXT) == ["aiohttp==3.9.0", "numpy==2.0.0"]


def test_unknown_plugin_or_extra_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"unknown plugin .frontend_htp.*known: .*frontend_http"):
        select.wanted_requirements(ROOT, "frontend_htp")
    with pytest.raises(SystemExit, match="has no extra 'tpu'"):
        select.wanted_requirements(ROOT, "backend_onnx[tpu]")
    with pytest.raises(SystemExit, match="unknown plugin"):
        select.wanted_requirements(ROOT, "../../etc")


def test_kernel_is_always_in_and_local_packages_never_come_from_the_lock() -> None:
    wanted = select.wanted_requirements(ROOT, "frontend_http")
    names = {select._requirement_name(r) for r in wanted}
    assert {"pluggy", "attrs", "numpy", "aiohttp"} <= names
    assert not any(name.startswith("tritium") for name in names)
    assert select.wanted_requirements(ROOT, "") == select.wanted_requirements(ROOT, " ")


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_.-]{0,12}[a-z0-9]", fullmatch=True),
                          st.lists(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), min_size=1, max_size=3)),
                min_size=1, max_size=8, unique_by=lambda item: select.normalize(item[0])))
def test_lock_format_round_trips(packages: list[tuple[str, list[str]]]) -> None:
    """What lock.py writes, select_locked.py reads back: every package, every hash."""
    pylock = {"packages": [
        {"name": name, "version": "1.0", "wheels": [{"hashes": {"sha256": digest}} for digest in digests]}
        for name, digests in packages
    ]}
    entries = select.locked_entries(lock.pylock_to_requirements(pylock))
    assert set(entries) == {select.normalize(name) for name, _ in packages}
    for name, digests in packages:
        for digest in digests:
            assert f"--hash=sha256:{digest}" in entries[select.normalize(name)]
