"""``tritium repo check`` fails for a model exactly when ``serve`` cannot load it.

Hypothesis lays out repositories of models broken in the ways a kernel can see before a backend runs (no
version folder, an empty one, the wrong file, a version policy naming a missing version, a scheduling section no
installed scheduler serves, a backend that is not installed or unavailable, no config.pbtxt when auto-complete
is disabled or the backend cannot complete one), checks them with ``repo check`` and loads them with a real
server, with the same plugins and the same auto-complete setting. Per model, the two must agree.
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
from tritium.abc import Backend, InstancePlacement, ModelInstance, ModelSource
from tritium.config import ModelConfig


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


class Described(fakes.IdentityBackend):
    """An identity backend whose model file describes the model (as an ONNX file does): auto-complete gives a
    config without inputs ``INPUT0 -> OUTPUT0``, so the model loads without a config.pbtxt."""

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        described = ModelConfig()
        described.CopyFrom(config)
        if not len(described.input):
            text_format.Merge('input { name: "INPUT0" data_type: TYPE_FP32 dims: [-1] }', described)
        return super().auto_complete_config(source, described)


class Plain(Backend):
    """An identity backend that keeps :class:`Backend`'s default auto-complete (it completes nothing)."""

    def create_instance(self, source: ModelSource, config: ModelConfig, placement: InstancePlacement) -> ModelInstance:
        return fakes.IdentityInstance(config)


class MoreBackends:
    @tritium.hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec("described", lambda options: Described(options), "model.described"),
            BackendSpec("plain", lambda options: Plain(), "model.plain"),
        ]


PLUGINS: list[tuple[str, Any]] = [("fakes", fakes), ("absent", AbsentFramework()), ("more", MoreBackends())]

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
BACKENDS = {
    "identity": "model.identity",
    "absent_fw": "model.absent",
    "not_installed": "model.nothing",
    "described": "model.described",
    "plain": "model.plain",
}


@attrs.define(frozen=True)
class ModelCase:
    name: str
    layout: str
    policy: str
    scheduling: str
    backend: str
    has_config: bool = True

    def write(self, repo: Path) -> None:
        config = fakes.identity_config(self.name, max_batch_size=4)
        config.backend = self.backend
        text_format.Merge(POLICIES[self.policy], config)
        text_format.Merge(SCHEDULING[self.scheduling], config)
        model_dir = repo / self.name
        model_dir.mkdir()
        if self.has_config:  # else the backend comes from the model file's name, the rest from auto-complete
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
        has_config=st.booleans(),
    )
    return st.lists(case, min_size=1, max_size=3).map(
        lambda cases: [attrs.evolve(c, name=f"m{i}") for i, c in enumerate(cases)]
    )


def check(repo: Path, *, auto_complete: bool = True) -> dict[str, bool]:
    out, err = io.StringIO(), io.StringIO()
    flags = [] if auto_complete else ["--disable-auto-complete-config"]
    tritium_cli(["repo", "check", str(repo), "--json", *flags], extra_plugins=PLUGINS, stdout=out, stderr=err)
    return {m["name"]: m["ok"] for m in json.loads(out.getvalue())["models"]}


async def load(repo: Path, *, auto_complete: bool = True) -> dict[str, bool]:
    options = tritium.ServerOptions(
        model_repositories=(str(repo),), exit_on_error=False, auto_complete_config=auto_complete
    )
    server = tritium.Server(options, plugins=PLUGINS)
    await server.start()
    try:
        names = {e["name"] for e in server.service.repository_index()}
        return {name: server.service.model_ready(name) for name in names}
    finally:
        await server.stop(timeout=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=model_cases(), auto_complete=st.booleans())
def test_repo_check_fails_exactly_when_serve_cannot_load(cases: list[ModelCase], auto_complete: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        for case in cases:
            case.write(repo)
        checked = check(repo, auto_complete=auto_complete)
        loaded = asyncio.run(load(repo, auto_complete=auto_complete))
    assert checked == loaded, (cases, auto_complete)


@pytest.mark.parametrize(
    ("backend", "auto_complete", "ok"),
    [
        ("described", True, True),  # the backend completed the config: Triton serves it
        ("described", False, False),  # auto-complete disabled: no config at all
        ("plain", True, False),  # the backend does not auto-complete
        ("identity", True, False),  # the backend cannot complete it (no inputs)
    ],
)
def test_a_model_without_config_file_loads_only_when_its_backend_completed_one(
    tmp_path: Path, backend: str, auto_complete: bool, ok: bool
) -> None:
    ModelCase("m", "ok", "", "", backend, has_config=False).write(tmp_path)
    assert check(tmp_path, auto_complete=auto_complete) == {"m": ok}
    assert asyncio.run(load(tmp_path, auto_complete=auto_complete)) == {"m": ok}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (ModelCase("m", "no_version", "", "", "identity"), "has no version folder"),
        (ModelCase("m", "empty_version", "", "", "identity"), "model.identity: not found: version folder"),
        (ModelCase("m", "wrong_file", "", "", "identity"), "has no 'model.identity'"),
        (ModelCase("m", "ok", "", "sequence", "identity"), "uses 'sequence_batching', but no installed scheduler"),
        (ModelCase("m", "ok", "", "", "absent_fw"), "backend 'absent_fw' is unavailable: install absent-fw"),
        (ModelCase("m", "ok", "", "", "not_installed"), "backend 'not_installed' is not available"),
        (
            ModelCase("noac", "ok", "", "", "described", has_config=False),
            "noac/config.pbtxt' for model 'noac': auto-complete is disabled",
        ),
        (
            ModelCase("m", "ok", "", "", "plain", has_config=False),
            "m/config.pbtxt' for model 'm': backend 'plain' does not auto-complete",
        ),
    ],
)
def test_repo_check_names_the_file_and_the_reason(tmp_path: Path, case: ModelCase, reason: str) -> None:
    case.write(tmp_path)
    out = io.StringIO()
    argv = ["repo", "check", str(tmp_path)]
    if case.name == "noac":
        argv.append("--disable-auto-complete-config")
    code = tritium_cli(argv, extra_plugins=PLUGINS, stdout=out, stderr=io.StringIO())
    assert code == 1
    assert f"{case.name}: ERROR: " in out.getvalue() and reason in out.getvalue(), out.getvalue()
