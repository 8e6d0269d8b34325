"""``tritium plugins`` and ``tritium repo check``, run in-process through ``tritium._cli.commands.run``."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path
from typing import Any

import pytest

import tritium
from tritium import BackendSpec, DataType
from tritium._cli.commands import run
from tritium.testing.fakes import identity_config, write_identity_model, write_model


def _factory(*args: Any) -> None:
    return None


def _module(name: str, **hooks: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, value in hooks.items():
        setattr(module, f"tritium_register_{hook}", tritium.hookimpl(lambda value=value: value))
    return module


GOOD = _module(
    "good",
    backends=[
        BackendSpec("ready", _factory, "model.ready", availability=lambda: None),
        BackendSpec("needs_fw", _factory, "model.fw", availability=lambda: "install the framework: pip install fw"),
    ],
)
PLUGINS: list[tuple[str, object]] = [
    ("builtin", "tritium._runtime.builtin"),
    ("good", GOOD),
    ("broken", "tritium_no_such_module_xyz"),
    ("returns_junk", _module("junk", backends="onnx")),
    ("blocked_one", _module("b", backends=[BackendSpec("hidden", _factory, "model.hidden")])),
]
FAKES: list[tuple[str, object]] = [("builtin", "tritium._runtime.builtin"), ("fakes", "tritium.testing.fakes")]


def tritium_cli(*argv: str, plugins: list[tuple[str, object]] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(
        list(argv), extra_plugins=PLUGINS if plugins is None else plugins, discover=False, stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------- plugins
def test_plugins_table() -> None:
    code, out, _ = tritium_cli("plugins", "--disable-plugin", "blocked_one")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS"]
    rows = {line.split()[0]: line for line in lines[1:6]}
    assert rows["good"].split()[3:] == ["ok", "backend:ready,", "backend:needs_fw"]
    assert rows["broken"].split()[3] == "error"
    assert rows["blocked_one"].split()[3] == "disabled"
    assert "scheduler:default" in rows["builtin"]
    assert "Plugins that failed to load:" in out
    assert "  broken: plugin 'broken' (in-process): cannot import 'tritium_no_such_module_xyz'" in out
    assert "  returns_junk: plugin 'returns_junk' (in-process): tritium_register_backends returned str" in out
    assert "Disabled (--disable-plugin): blocked_one" in out
    assert "Unavailable backends:\n  needs_fw: install the framework: pip install fw" in out


def test_plugins_json() -> None:
    code, out, _ = tritium_cli("plugins", "--json", "--disable-plugin=blocked_one")
    assert code == 0
    report = json.loads(out)
    by_name = {p["name"]: p for p in report["plugins"]}
    assert by_name["good"] == {
        "name": "good",
        "distribution": "",
        "version": "",
        "components": ["backend:ready", "backend:needs_fw"],
        "blocked": False,
        "error": None,
    }
    assert by_name["blocked_one"]["blocked"] is True
    assert by_name["broken"]["error"].startswith("plugin 'broken' (in-process): cannot import")
    assert report["unavailable_backends"] == {"needs_fw": "install the framework: pip install fw"}


def test_plugins_never_crash_on_a_broken_availability_check() -> None:
    def explode() -> str:
        raise RuntimeError("kaboom")

    plugins = [("x", _module("x", backends=[BackendSpec("x", _factory, "m", availability=explode)]))]
    code, out, _ = tritium_cli("plugins", plugins=plugins)
    assert code == 0 and "x: availability check failed: RuntimeError: kaboom" in out


def test_plugins_empty_and_bad_flag() -> None:
    assert tritium_cli("plugins", plugins=[])[1].startswith("No plugins found")
    code, _, err = tritium_cli("plugins", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_top_level_usage_and_version() -> None:
    code, out, _ = tritium_cli()
    assert code == 2 and "commands:" in out
    assert tritium_cli("--help")[0] == 0
    code, _, err = tritium_cli("frobnicate")
    assert code == 2 and "unknown command 'frobnicate'" in err
    code, out, _ = tritium_cli("--version")
    assert code == 0 and out.startswith(f"tritium {tritium.__version__}")


def test_serve_errors_are_printed_without_traceback(tmp_path: Path) -> None:
    code, _, err = tritium_cli("serve", "--model-repository", str(tmp_path), "--http-port=1", plugins=FAKES)
    assert code == 2
    assert err.startswith("tritium serve: error: flag --http-port belongs to the frontend plugin 'frontend_http'")
    code, _, err = tritium_cli("serve", "--config", str(tmp_path / "nope.toml"), plugins=FAKES)
    assert code == 1 and "cannot read the config file" in err and "Traceback" not in err
    code, _, err = tritium_cli("serve", "--model-repository", str(tmp_path))
    assert code == 1 and "plugin 'broken' (in-process): cannot import" in err and "Traceback" not in err


def test_serve_help_and_schema_exit_zero() -> None:
    code, out, _ = tritium_cli("serve", "--help")
    assert code == 0 and "--model-repository" in out
    code, out, _ = tritium_cli("serve", "--print-config-schema")
    assert code == 0 and json.loads(out)["title"] == "Tritium server configuration"


# ------------------------------------------------------------------------------------------ repo check
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    write_identity_model(root, "ident", DataType.INT32, dims=(4,))
    partial = identity_config("partial", DataType.FP32, dims=(2,))
    del partial.output[:]
    write_model(root, partial, files={"model.identity": b""})
    return root


def test_repo_check_ok_with_completed_config(repo: Path) -> None:
    code, out, err = tritium_cli("repo", "check", str(repo), "--show-config", plugins=FAKES)
    assert code == 0, out + err
    assert "ident: OK (backend identity, versions 1)" in out
    assert "partial: OK (backend identity, versions 1)" in out
    assert "2 model(s) checked, 0 with problems" in out
    assert '"name": "OUTPUT0"' in out  # the auto-completed output of 'partial'


def test_repo_check_json(repo: Path) -> None:
    code, out, _ = tritium_cli("repo", "check", str(repo), "--json", plugins=FAKES)
    assert code == 0
    report = json.loads(out)
    partial = next(m for m in report["models"] if m["name"] == "partial")
    assert partial["ok"] and partial["backend"] == "identity" and partial["versions"] == [1]
    assert [o["name"] for o in partial["config"]["output"]] == ["OUTPUT0"]


def test_repo_check_reports_problems(repo: Path, tmp_path: Path) -> None:
    (repo / "garbled").mkdir()
    (repo / "garbled" / "config.pbtxt").write_text("name: 'garbled'\nmax_batch_size: [\n")
    (repo / "nobackend").mkdir()
    other = tmp_path / "other"
    other.mkdir()
    write_identity_model(other, "ident")
    code, out, _ = tritium_cli("repo", "check", str(repo), str(other), plugins=FAKES)
    assert code == 1
    assert "garbled: ERROR:" in out and "nobackend: ERROR:" in out
    assert "ident: ERROR: model 'ident' appears in several repositories" in out
    assert "partial: OK" in out


def test_repo_check_without_auto_complete(repo: Path) -> None:
    _, out, _ = tritium_cli("repo", "check", str(repo), "--disable-auto-complete-config", "--json", plugins=FAKES)
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert models["ident"]["ok"]
    partial = models["partial"]
    assert not partial["ok"] or partial["config"].get("output", []) == []  # not auto-completed


def test_repo_check_missing_directory_and_usage(tmp_path: Path) -> None:
    code, _, err = tritium_cli("repo", "check", str(tmp_path / "missing"), plugins=FAKES)
    assert code == 1 and "does not exist" in err
    assert tritium_cli("repo", plugins=FAKES)[0] == 2
    assert tritium_cli("repo", "check", plugins=FAKES)[0] == 2


def test_repo_check_empty_repository(tmp_path: Path) -> None:
    code, out, _ = tritium_cli("repo", "check", str(tmp_path), plugins=FAKES)
    assert code == 0 and out == "no models found\n"


def test_repo_check_unavailable_backend(tmp_path: Path) -> None:
    plugins = [*FAKES, ("good", GOOD)]
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('backend: "needs_fw"\nmax_batch_size: 0\n')
    code, out, _ = tritium_cli("repo", "check", str(tmp_path), plugins=plugins)
    assert code == 1
    assert "m: ERROR: backend 'needs_fw' is unavailable: install the framework: pip install fw" in out
