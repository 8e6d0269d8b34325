"""``tritium repo check`` fails for a model exactly when ``serve`` cannot load it.

Hypothesis lays out repositories of models broken in the ways a kernel can see before a backend runs (no
version folder, an empty one, the wrong file, a version policy naming a missing version, a scheduling section no
installed scheduler serves, a backend that is not installed or unavailable), checks them with ``repo check`` and
loads them with a real server, with the same plugins. Per model, the two must agree.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tritium
import tritium.testing.fakes as fakes
from tritium import BackendSpec
from tritium._cli.commands import run as tritium_cli


class AbsentFramework:
    """A backend whose framework is not installed here (its availability check says so)."""

    @tritium.hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec(
                "absent_fw", lambda options: fakes.IdentityBackend(options), "model.absent",
                availability=lambda: "install absent-fw: pip install absent-fw",
            )
        ]


PLUGINS: list[tuple[str, Any]] = [("fakes", fakes), ("absent", AbsentFramework())]

LAYOUTS = {
    "ok": {"1": ["FILE"]},
    "empty_version": {"1": []},
    "no_version": {},
    "wrong_file": {"1": ["other.bin"]},
    "ignored_versions_only": {"0": ["FILE"], "01": ["FILE"]},
    "older_version_empty": {"1": [], "2": ["FILE"]},
    "newest_version_empty": {"1": ["FILE"], "2": []},
}
POLICIES = {"": "", "all": "version_policy { all {} }", "specific_1": "version_policy { specific { versions: 1 } }"}
SCHEDULING = {
    "": "",
    "dynamic": "dynamic_batching {}",
    "sequence": "sequence_batching {}",
    "decoupled": "model_transaction_policy { decoupled: true }",
}
BACKENDS = {"identity": "model.identity", "absent_fw": "model.absent", "not_installed": "model.nothing"}


@attrs.define(frozen=True)
class ModelCase:
    name: str
    layout: str
    policy: str
    scheduling: str
    backend: str

    def write(self, repo: Path) -> None:
        config = fakes.identity_config(self.name, max_batch_size=4)
        config.backend = self.backend
        text_format.Merge(POLICIES[self.policy], config)
        text_format.Merge(SCHEDULING[self.scheduling], config)
        model_dir = repo / self.name
        model_dir.mkdir()
        (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
        for version, files in LAYOUTS[self.layout].items():
            folder = model_dir / version
            folder.mkdir()
            for file in files:
                (folder / (BACKENDS[self.backend] if file == "FILE" else file)).write_bytes(b"")


def model_cases() -> st.SearchStrategy[list[ModelCase]]:
    case = st.builds(
        ModelCase,
        name=st.just(""),
        layout=st.sampled_from(sorted(LAYOUTS)),
        policy=st.sampled_from(sorted(POLICIES)),
        scheduling=st.sampled_from(sorted(SCHEDULING)),
        backend=st.sampled_from(sorted(BACKENDS)),
    )
    return st.lists(case, min_size=1, max_size=3).map(
        lambda cases: [attrs.evolve(c, name=f"m{i}") for i, c in enumerate(cases)]
    )


def check(repo: Path) -> dict[str, bool]:
    out, err = io.StringIO(), io.StringIO()
    tritium_cli(["repo", "check", str(repo), "--json"], extra_plugins=PLUGINS, stdout=out, stderr=err)
    return {m["name"]: m["ok"] for m in json.loads(out.getvalue())["models"]}


async def load(repo: Path) -> dict[str, bool]:
    server = tritium.Server(
        tritium.ServerOptions(model_repositories=(str(repo),), exit_on_error=False), plugins=PLUGINS
    )
    await server.start()
    try:
        names = {e["name"] for e in server.service.repository_index()}
        return {name: server.service.model_ready(name) for name in names}
    finally:
        await server.stop(timeout=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=model_cases())
def test_repo_check_fails_exactly_when_serve_cannot_load(cases: list[ModelCase]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        for case in cases:
            case.write(repo)
        checked = check(repo)
        loaded = asyncio.run(load(repo))
    assert checked == loaded, cases


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (ModelCase("m", "no_version", "", "", "identity"), "has no version folder"),
        (ModelCase("m", "empty_version", "", "", "identity"), "model.identity: not found: version folder"),
        (ModelCase("m", "wrong_file", "", "", "identity"), "has no 'model.identity'"),
        (ModelCase("m", "ok", "", "sequence", "identity"), "uses 'sequence_batching', but no installed scheduler"),
        (ModelCase("m", "ok", "", "", "absent_fw"), "backend 'absent_fw' is unavailable: install absent-fw"),
        (ModelCase("m", "ok", "", "", "not_installed"), "backend 'not_installed' is not available"),
    ],
)
def test_repo_check_names_the_file_and_the_reason(tmp_path: Path, case: ModelCase, reason: str) -> None:
    case.write(tmp_path)
    out = io.StringIO()
    code = tritium_cli(["repo", "check", str(tmp_path)], extra_plugins=PLUGINS, stdout=out, stderr=io.StringIO())
    assert code == 1
    assert "m: ERROR: " in out.getvalue() and reason in out.getvalue(), out.getvalue()
