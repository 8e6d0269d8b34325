"""Meta-tests of the conformance kit: hooks are documented, the fakes (and the kernel's default scheduler) pass
the kit's own mixins, and the mixins' checks catch what they claim to catch."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tritium
from tritium import hookspecs
from tritium._runtime.default_scheduler import DefaultScheduler
from tritium.testing import (
    BackendConformance,
    FrontendConformance,
    MetricsSinkConformance,
    PluginPackagingConformance,
    SchedulerConformance,
    fakes,
)
from tritium.testing._modelconfig import is_refinement
from tritium.testing.builders import build_request, check_outputs
from tritium.testing.multiprocess import MultiProcessSchedulerConformance
from tritium.testing.packaging import imported_modules


# ------------------------------------------------------------------------------------------- hookspecs
def _hookspecs() -> list[Any]:
    return [
        obj
        for _, obj in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(obj, f"{hookspecs.PROJECT_NAME}_spec")
    ]


def test_there_are_hookspecs() -> None:
    names = {fn.__name__ for fn in _hookspecs()}
    assert {"tritium_register_backends", "tritium_register_frontends"} <= names


@pytest.mark.parametrize("spec", _hookspecs(), ids=lambda fn: fn.__name__)
def test_every_hook_has_a_docstring(spec: Any) -> None:
    doc = inspect.getdoc(spec) or ""
    assert len(doc) > 40, f"hook {spec.__name__} needs a docstring saying when it is called and what it returns"
    assert "Called" in doc or "called" in doc, f"hook {spec.__name__}: say when it is called"


@pytest.mark.parametrize("spec", _hookspecs(), ids=lambda fn: fn.__name__)
def test_every_hook_follows_the_naming_rule(spec: Any) -> None:
    assert spec.__name__.startswith(("tritium_register_", "tritium_add_")), spec.__name__


def test_kit_public_names_resolve() -> None:
    for name in tritium.testing.__all__:
        assert getattr(tritium.testing, name) is not None
    with pytest.raises(AttributeError):
        _ = tritium.testing.NoSuchThing  # type: ignore[attr-defined]


# -------------------------------------------------------------------------- the fakes pass the mixins
class TestIdentityBackendConformance(BackendConformance):
    validates_model_file = False  # the identity backend ignores its (empty) model file

    @pytest.fixture
    def backend(self) -> tritium.Backend:
        return fakes.IdentityBackend()

    @pytest.fixture(
        params=[
            (tritium.DataType.FP32, (-1,), 8, False),
            (tritium.DataType.BYTES, (2, -1), 0, False),
            (tritium.DataType.BF16, (3,), 4, False),
            (tritium.DataType.BOOL, (-1,), 0, False),
            (tritium.DataType.INT64, (-1,), 0, True),
        ],
        ids=["fp32-batching", "bytes", "bf16-batching", "bool", "int64-decoupled"],
    )
    def model_source_and_config(self, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        datatype, dims, max_batch_size, decoupled = request.param
        options = {"inputs": 2, "decoupled": decoupled, "decoupled_repeat": 2 if decoupled else None}
        model_dir = fakes.write_identity_model(tmp_path, "m", datatype, dims, max_batch_size, **options)
        return fakes.model_source(model_dir), fakes.identity_config("m", datatype, dims, max_batch_size, **options)


class TestDefaultSchedulerConformance(SchedulerConformance):
    """The kernel's default scheduler (no scheduling section) against the kit."""

    @pytest.fixture
    def scheduler_factory(self) -> Any:
        return DefaultScheduler


class TestDefaultSchedulerNonBatchingConformance(TestDefaultSchedulerConformance):
    @pytest.fixture
    def scheduler_config(self) -> Any:
        return fakes.identity_config("nobatch", tritium.DataType.BYTES, (-1, 2), max_batch_size=0)


class TestDefaultSchedulerWorkersConformance(MultiProcessSchedulerConformance):
    """The default scheduler in an executor fed by two workers (``tritium serve --workers 2``)."""

    @pytest.fixture
    def scheduler_factory(self) -> Any:
        return DefaultScheduler

    @pytest.fixture
    def scheduler_decoupled(self) -> bool:
        return True


class TestLoopbackFrontendConformance(FrontendConformance):
    @pytest.fixture
    def frontend_spec(self) -> tritium.FrontendSpec:
        return tritium.FrontendSpec(name="loopback", factory=fakes.LoopbackFrontend)

    def make_client(self, frontend: tritium.Frontend, port: int) -> fakes.LoopbackClient:
        assert isinstance(frontend, fakes.LoopbackFrontend)
        return fakes.LoopbackClient(frontend)


class TestRecordingSinkConformance(MetricsSinkConformance):
    @pytest.fixture
    def metrics_sink(self) -> tritium.MetricsSink:
        return fakes.RecordingSink()


class TestKernelPackagingConformance(PluginPackagingConformance):
    """The kernel's own built-in plugin is packaged like any other."""

    distribution = "tritium"
    entry_point = "builtin"


# ----------------------------------------------------------------------- the mixins' checks catch faults
def test_is_refinement_reports_dropped_and_changed_fields() -> None:
    original = fakes.identity_config("m", tritium.DataType.FP32, (4,), 8, inputs=2)
    assert is_refinement(original, original) == []
    changed = type(original)()
    changed.CopyFrom(original)
    changed.max_batch_size = 4
    del changed.input[1]
    changed.output[0].dims[:] = [5]
    problems = is_refinement(original, changed)
    assert any("max_batch_size" in p for p in problems)
    assert any("'INPUT1' was dropped" in p for p in problems)
    assert any("output['OUTPUT0'].dims" in p for p in problems)


def test_is_refinement_accepts_additions() -> None:
    original = fakes.identity_config("m", tritium.DataType.FP32, (4,), 8)
    del original.output[:]
    completed = fakes.IdentityBackend().auto_complete_config(fakes.model_source(Path("/nowhere/m")), original)
    assert len(completed.output) == 1
    assert is_refinement(original, completed) == []


def test_check_outputs_reports_each_fault() -> None:
    config = fakes.identity_config("m", tritium.DataType.INT32, (3,), 8, inputs=2)
    good = {"OUTPUT0": np.zeros((2, 3), np.int32), "OUTPUT1": np.zeros((2, 3), np.int32)}
    assert check_outputs(config, good, ["OUTPUT0", "OUTPUT1"], 2) == []
    bad = {"OUTPUT0": np.zeros((2, 3), np.int64), "OUTPUT1": np.zeros((3, 3), np.int32)}
    problems = check_outputs(config, bad, ["OUTPUT0", "OUTPUT1", "OUTPUT9"], 2)
    assert len(problems) == 3, problems
    assert check_outputs(config, {}, ["OUTPUT0"], 2) == ["requested output 'OUTPUT0' is missing"]
    text = fakes.identity_config("t", tritium.DataType.BYTES, (-1,), 0)
    strings = np.array(["a"], dtype=object)
    assert "not bytes" in check_outputs(text, {"OUTPUT0": strings}, ["OUTPUT0"])[0]


def test_packaging_probe_sees_what_a_plugin_imports() -> None:
    modules = imported_modules("tritium", "builtin")
    assert "tritium._runtime.builtin" in modules
    assert "numpy" in modules  # the kernel's own dependency, so the probe does see imports
    assert not any(m == "onnxruntime" or m.startswith("onnxruntime.") for m in modules)


class _DropsInputs(fakes.IdentityBackend):
    """A faulty backend: auto-complete replaces the inputs."""

    def auto_complete_config(self, source: tritium.ModelSource, config: Any) -> Any:
        completed = type(config)()
        completed.CopyFrom(config)
        del completed.input[:]
        completed.input.add(name="OTHER", data_type=tritium.DataType.FP32.config_enum, dims=[1])
        return completed


def test_backend_mixin_fails_a_backend_that_overrides_the_config(tmp_path: Path) -> None:
    config = fakes.identity_config("m", tritium.DataType.FP32, (4,), 8)
    source = fakes.model_source(fakes.write_identity_model(tmp_path, "m", tritium.DataType.FP32, (4,), 8))
    with pytest.raises(AssertionError):
        BackendConformance().test_auto_complete_keeps_what_the_config_set(_DropsInputs(), (source, config))


# ------------------------------------------------------------------------------- the fakes in a server
@pytest.fixture
def identity_repository(tmp_path: Path) -> Iterator[Path]:
    fakes.write_identity_model(tmp_path, "ident", tritium.DataType.INT32, (-1,), 4, inputs=2)
    fakes.write_identity_model(tmp_path, "stream", tritium.DataType.FP32, (-1,), 0, decoupled=True, decoupled_repeat=2)
    yield tmp_path


@pytest.mark.parametrize("plugin", [fakes, fakes.fake_plugin], ids=["module", "object"])
async def test_fakes_plugin_serves_identity_models(identity_repository: Path, plugin: object) -> None:
    options = tritium.ServerOptions(model_repositories=(str(identity_repository),))
    async with tritium.Server(options, plugins=[("fakes", plugin)]) as server:
        config = server.service.model_config("ident")
        request = build_request(config, batch_size=3)
        request.batch_size = 0  # let the data plane fill it, as for a client request
        response = await server.service.infer(request)
        stream_config = server.service.model_config("stream")
        stream = [r async for r in server.service.infer_stream(build_request(stream_config))]
    outputs: Mapping[str, Any] = {t.name: t.data for t in response.outputs}
    assert np.array_equal(outputs["OUTPUT0"], request.inputs["INPUT0"].data)
    assert np.array_equal(outputs["OUTPUT1"], request.inputs["INPUT1"].data)
    assert len([r for r in stream if r.outputs]) == 2


def test_write_model_round_trips_through_the_config_parser(tmp_path: Path) -> None:
    from tritium.config import load_model_config

    config = fakes.identity_config("m", tritium.DataType.BYTES, (2, -1), 0, decoupled=True, execute_delay_ms=5)
    model_dir = fakes.write_model(tmp_path, config, version=3, files={"model.identity": b"", "sub/x.txt": "x"})
    assert load_model_config(model_dir / "config.pbtxt") == config
    assert (model_dir / "3" / "model.identity").is_file()
    assert (model_dir / "3" / "sub" / "x.txt").read_text() == "x"
