"""The real ``tritium`` console script, run as a subprocess.

Each test blocks every installed plugin except the built-ins (and its own throwaway distributions on
PYTHONPATH), so the results do not depend on which plugins this environment happens to have.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tritium._plugins.flags import KERNEL_OPTIONS
from tritium.testing.fakes import write_identity_model

SCRIPT = Path(sys.executable).with_name("tritium")
TIMEOUT = 60


def command() -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-c", "import sys; from tritium._cli.commands import main; sys.exit(main())"]


def others(*keep: str) -> list[str]:
    """``--disable-plugin`` flags for every installed plugin except ``keep`` and the built-ins."""
    flags: list[str] = []
    for ep in importlib.metadata.entry_points(group="tritium.plugins"):
        if ep.name not in (*keep, "builtin"):
            flags += ["--disable-plugin", ep.name]
    return flags


def write_distribution(root: Path, dist: str, entry_points: dict[str, str]) -> Path:
    info = root / f"{dist.replace('-', '_')}-0.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.9\n")
    lines = ["[tritium.plugins]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def env_with(path: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH", "")]))
    return env


def tritium(*argv: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *argv], capture_output=True, text=True, timeout=TIMEOUT, env=env_with(pythonpath)
    )


NULL_FRONTEND = """
import tritium
from tritium.abc import Frontend


class NullFrontend(Frontend):
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@tritium.hookimpl
def tritium_register_frontends():
    return [tritium.FrontendSpec("null", lambda service, options: NullFrontend(), enable_flag="--allow-null")]
"""


@pytest.fixture
def throwaway(tmp_path: Path) -> Path:
    """A site directory with a broken plugin and working ones (the identity fakes; a frontend listening nowhere,
    since serve refuses to start without any frontend plugin, whichever this environment has)."""
    site = tmp_path / "site"
    write_distribution(site, "tmp-broken", {"tmp_broken": "tmp_no_such_module"})
    write_distribution(site, "tmp-fakes", {"tmp_fakes": "tritium.testing.fakes"})
    write_distribution(site, "tmp-frontend", {"frontend_tmp": "tmp_null_frontend"})
    (site / "tmp_null_frontend.py").write_text(NULL_FRONTEND)
    return site


def test_plugins_lists_builtins_and_broken_plugins(throwaway: Path) -> None:
    result = tritium("plugins", pythonpath=throwaway)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert rows["builtin"][1:4] == ["tritium", rows["builtin"][2], "ok"]
    assert rows["tmp_broken"][1:4] == ["tmp-broken", "0.9", "error"]
    assert rows["tmp_fakes"][1:5] == ["tmp-fakes", "0.9", "ok", "backend:identity"]
    assert (
        "tmp_broken: plugin 'tmp_broken' (distribution tmp-broken 0.9): cannot import 'tmp_no_such_module': "
        "ModuleNotFoundError: No module named 'tmp_no_such_module'" in result.stdout
    )


def test_plugins_json_and_blocking(throwaway: Path) -> None:
    result = tritium("plugins", "--json", "--disable-plugin", "tmp_broken", pythonpath=throwaway)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["tmp_broken"]["blocked"] is True and plugins["tmp_broken"]["error"] is None
    assert plugins["builtin"]["components"][0].startswith("scheduler:")


def test_serve_help_lists_every_kernel_flag() -> None:
    result = tritium("serve", "--help")
    assert result.returncode == 0, result.stderr
    for opt in KERNEL_OPTIONS:
        for flag in opt.flags:
            assert flag in result.stdout


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["serve", "--model-repository=/x", "--bogus"], 2, "tritium serve: error: unrecognized flag --bogus"),
        (["serve"], 2, "tritium serve: error: --model-repository must be specified"),
        (["serve", "--model-repository=/x", "--rate-limit=execution_count"], 2, "is not supported"),
        (["serve", "--model-repository=/x", "--http-port=1", "--disable-plugin=frontend_http"], 2, "which is disabled"),
        (["serve", "--model-repository=/definitely/missing"], 1, "model repository path does not exist"),
    ],
)
def test_serve_errors(throwaway: Path, argv: list[str], code: int, message: str) -> None:
    result = tritium(*argv, *others(), "--disable-plugin=tmp_broken", pythonpath=throwaway)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_broken_plugin(throwaway: Path, tmp_path: Path) -> None:
    result = tritium("serve", "--model-repository", str(tmp_path), *others("tmp_broken"), pythonpath=throwaway)
    assert result.returncode == 1
    assert "plugin 'tmp_broken' (distribution tmp-broken 0.9): cannot import" in result.stderr
    assert "Traceback" not in result.stderr


def wait_for(path: Path, pattern: str, process: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            pytest.fail(f"tritium exited with {process.returncode}:\n{text}")
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"timed out waiting for {pattern!r}:\n{path.read_text() if path.exists() else ''}")


def start(argv: Sequence[str], log: Path, pythonpath: Path | None = None) -> subprocess.Popen[str]:
    with log.open("w") as sink:
        return subprocess.Popen(
            [*command(), *argv], stdout=sink, stderr=subprocess.STDOUT, text=True, env=env_with(pythonpath)
        )


def test_serve_from_a_config_file_then_sigterm(throwaway: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    write_identity_model(repo, "ident")
    config = tmp_path / "server.yaml"
    config.write_text(
        "server:\n  model_repository: [models]\n  log_format: ISO8601\n  exit_timeout_secs: 5\n  id: from-file\n"
    )
    log = tmp_path / "out.log"
    process = start(
        [
            "serve",
            "--config",
            str(config),
            "--backend-directory=/opt",
            *others("tmp_fakes", "frontend_tmp"),
            "--disable-plugin",
            "tmp_broken",
        ],
        log,
        throwaway,
    )
    try:
        text = wait_for(log, r"ready", process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    iso = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [IWEV] \d+ \S+\.py:\d+\] "
    assert re.search(iso + r"--backend-directory=/opt is ignored", text, re.M), text
    assert "Traceback" not in text


def test_serve_log_file_and_startup_failure(throwaway: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    (repo / "broken").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text("max_batch_size: [\n")
    log_file = tmp_path / "tritium.log"
    result = tritium(
        "serve", "--model-repository", str(repo), "--log-file", str(log_file), "--log-verbose=1", *others(),
        "--disable-plugin=tmp_broken", pythonpath=throwaway,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("tritium serve: error: ")
    assert "Traceback" not in result.stderr
    logged = log_file.read_text()
    assert re.search(r"^E\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ \S+\.py:\d+\] ", logged, re.M), logged
