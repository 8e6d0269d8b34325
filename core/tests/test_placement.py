"""Where instances land when a machine has GPUs: groups without a kind go to a GPU only when the model's backend
can run there (``Backend.supports_gpu``); explicit KIND_GPU keeps Triton's rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

import tritium
import tritium._runtime.lifecycle as lifecycle
import tritium.testing.fakes as fakes
from tritium import Backend, BackendSpec, InstancePlacement, ModelInstance, ModelSource
from tritium.config import ModelConfig


class PlacementRecorder(fakes.IdentityBackend):
    """The identity backend, recording every placement it is asked for; ``gpu`` is what it declares."""

    def __init__(self, gpu: bool) -> None:
        super().__init__()
        self.gpu = gpu
        self.placements: list[InstancePlacement] = []

    def supports_gpu(self) -> bool:
        return self.gpu

    def create_instance(self, source: ModelSource, config: ModelConfig, placement: InstancePlacement) -> ModelInstance:
        self.placements.append(placement)
        return super().create_instance(source, config, placement)


class Plugin:
    def __init__(self) -> None:
        self.cpu_only = PlacementRecorder(gpu=False)
        self.gpu_capable = PlacementRecorder(gpu=True)

    @tritium.hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec("cpu_only", lambda options: self.cpu_only, "model.identity"),
            BackendSpec("gpu_capable", lambda options: self.gpu_capable, "model.identity"),
        ]


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lifecycle, "visible_gpu_count", lambda: 2)
    yield


def write(repo: Path, name: str, backend: str, groups: str = "") -> None:
    config = fakes.identity_config(name, max_batch_size=0)
    config.backend = backend
    del config.instance_group[:]  # no kind given, unless ``groups`` gives one
    if groups:
        text_format.Parse(groups, config)
    fakes.write_model(repo, config, files={fakes.IDENTITY_MODEL_FILE: b""})


async def serve(repo: Path, plugin: Plugin, **options: Any) -> tritium.Server:
    server = tritium.Server(
        tritium.ServerOptions(model_repositories=(str(repo),), exit_on_error=False, **options),
        plugins=[("placement", plugin)],
    )
    await server.start()
    return server


async def test_unspecified_kind_stays_on_the_cpu_when_the_backend_cannot_use_a_gpu(
    repo: Path, two_gpus: None, caplog: pytest.LogCaptureFixture
) -> None:
    write(repo, "plain", "cpu_only")
    write(repo, "auto", "cpu_only", "instance_group { kind: KIND_AUTO count: 2 }")
    plugin = Plugin()
    with caplog.at_level("INFO", logger="tritium.repository"):
        server = await serve(repo, plugin)
    try:
        assert server.service.model_ready("plain") and server.service.model_ready("auto")
        assert {p.kind for p in plugin.cpu_only.placements} == {"CPU"}
        assert len(plugin.cpu_only.placements) == 3
        kinds = {g.kind for g in server.service.model_config("plain").instance_group}
        assert kinds == {tritium.config.ModelInstanceGroup.KIND_CPU}
        assert "model 'plain': instance groups without a kind run on the CPU" in caplog.text
        assert "backend 'cpu_only' cannot use a GPU here" in caplog.text
    finally:
        await server.stop(timeout=5)


async def test_unspecified_kind_goes_to_every_gpu_when_the_backend_can_use_one(repo: Path, two_gpus: None) -> None:
    write(repo, "m", "gpu_capable")
    plugin = Plugin()
    server = await serve(repo, plugin)
    try:
        assert sorted((p.kind, p.device_id) for p in plugin.gpu_capable.placements) == [("GPU", 0), ("GPU", 1)]
    finally:
        await server.stop(timeout=5)


async def test_explicit_gpu_kind_keeps_tritons_rules(repo: Path, two_gpus: None) -> None:
    write(repo, "m", "cpu_only", "instance_group { kind: KIND_GPU gpus: [1] }")
    plugin = Plugin()
    server = await serve(repo, plugin)
    try:
        assert [(p.kind, p.device_id) for p in plugin.cpu_only.placements] == [("GPU", 1)]
    finally:
        await server.stop(timeout=5)


async def test_without_gpus_nothing_changes(repo: Path) -> None:
    write(repo, "m", "gpu_capable")
    plugin = Plugin()
    server = await serve(repo, plugin)
    try:
        assert [p.kind for p in plugin.gpu_capable.placements] == ["CPU"]
    finally:
        await server.stop(timeout=5)


def test_backends_declare_no_gpu_by_default() -> None:
    class Minimal(Backend):
        def create_instance(self, source: ModelSource, config: ModelConfig, placement: InstancePlacement) -> Any:
            raise NotImplementedError

    assert Minimal().supports_gpu() is False
