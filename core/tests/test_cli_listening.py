"""``tritium serve`` refuses to start when no frontend plugin is installed (it would report ready while listening
on no port), and warns when the installed frontends are all switched off."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import tritium
from tritium import FrontendSpec, install_command
from tritium._cli.commands import run
from tritium._cli.listening import check_listening
from tritium._cli.serve_args import parse_serve_args
from tritium.abc import Frontend

FAKES: list[tuple[str, object]] = [("builtin", "tritium._runtime.builtin"), ("fakes", "tritium.testing.fakes")]


class NullFrontend(Frontend):
    """A frontend that listens nowhere (enough for the checks, which never start it)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class NullFrontendPlugin:
    @tritium.hookimpl
    def tritium_register_frontends(self) -> list[FrontendSpec]:
        return [FrontendSpec("null", lambda service, options: NullFrontend(), enable_flag="--allow-null")]


WITH_FRONTEND: list[tuple[str, object]] = [*FAKES, ("frontend_null", NullFrontendPlugin())]


def listening(tmp_path: Path, plugins: list[tuple[str, object]], *flags: str) -> Any:
    invocation = parse_serve_args(
        ["--model-repository", str(tmp_path), *flags], extra_plugins=plugins, discover=False
    )
    return check_listening(invocation.host, invocation.options)


def test_serve_refuses_when_no_frontend_plugin_is_installed(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["serve", "--model-repository", str(tmp_path)], extra_plugins=FAKES, discover=False, stdout=out, stderr=err
    )
    assert code == 1, err.getvalue()
    message = err.getvalue()
    assert message.startswith("tritium serve: error: no frontend plugin is installed, so the server would listen")
    # Names commands that install the shipped frontends, from this checkout or the index.
    assert install_command("tritium-frontend-http") in message
    assert install_command("tritium-frontend-grpc") in message
    assert "Traceback" not in message


def test_an_enabled_frontend_passes_without_warning(tmp_path: Path) -> None:
    check = listening(tmp_path, WITH_FRONTEND)
    assert (check.refusal, check.warning) == ("", "")


def test_frontends_switched_off_by_flag_start_with_a_warning(tmp_path: Path) -> None:
    check = listening(tmp_path, WITH_FRONTEND, "--allow-null=false")
    assert check.refusal == ""
    assert "no frontend is enabled (--allow-null=false)" in check.warning
    assert "listens on no port" in check.warning


def test_frontend_plugins_blocked_by_the_user_start_with_a_warning(tmp_path: Path) -> None:
    check = listening(tmp_path, WITH_FRONTEND, "--disable-plugin", "frontend_null")
    assert check.refusal == ""
    assert "no frontend is enabled (--disable-plugin frontend_null)" in check.warning
