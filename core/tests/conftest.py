"""Shared fixtures of the kernel tests: a repository of fake identity models and a server factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import tritium
import tritium.testing.fakes as fakes


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    started: list[tritium.Server] = []

    async def factory(repo: Path, **options: Any) -> tritium.Server:
        options.setdefault("exit_on_error", False)
        server = tritium.Server(
            tritium.ServerOptions(model_repositories=(str(repo),), **options),
            plugins=[("fakes", fakes)],
        )
        await server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        await server.stop(timeout=5)
