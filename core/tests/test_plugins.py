"""The plugin host: discovery through entry points, registration, validation, attribution, blocking."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

import tritium
from tritium import BackendSpec, FrontendSpec, MetricsSinkSpec, OptionSpec, PluginError, SchedulerSpec
from tritium._plugins.host import PluginHost, PluginInfo


def _factory(*args: Any) -> None:
    return None


def plugin(name: str = "p", **hooks: Any) -> types.ModuleType:
    """A plugin module implementing ``tritium_register_<hook>`` returning each given value (a callable is
    called, so a hook can raise)."""
    module = types.ModuleType(name)

    def implementation(result: Any) -> Callable[[], Any]:
        def impl() -> Any:
            return result() if callable(result) else result

        return tritium.hookimpl(impl)

    for hook, result in hooks.items():
        setattr(module, f"tritium_register_{hook}", implementation(result))
    return module


def backend(name: str = "b", **kwargs: Any) -> BackendSpec:
    kwargs.setdefault("default_model_filename", f"model.{name}")
    return BackendSpec(name=name, factory=_factory, **kwargs)


def frontend(name: str = "f", **kwargs: Any) -> FrontendSpec:
    return FrontendSpec(name=name, factory=_factory, **kwargs)


def loaded(*plugins: tuple[str, object], strict: bool = True, disabled: tuple[str, ...] = ()) -> PluginHost:
    host = PluginHost(extra_plugins=plugins, discover=False, disabled=disabled)
    host.load(strict=strict)
    return host


# ------------------------------------------------------------------------------------ registration
def test_registries_owners_and_lookups() -> None:
    onnx = backend("onnxruntime", platforms=["onnxruntime_onnx"], extra_model_filenames=["model.ort"])
    dyn = SchedulerSpec(name="dynamic", config_section="dynamic_batching", factory=_factory)
    http = frontend(
        "http", options=[OptionSpec("port", int, 8000, "port", flag="--http-port")], enable_flag="--allow-http"
    )
    sink = MetricsSinkSpec(name="prometheus", factory=_factory)
    host = loaded(
        ("backend_onnx", plugin("a", backends=[onnx])),
        ("misc", plugin("b", schedulers=[dyn], frontends=(http,), metrics_sinks=[sink])),
    )
    assert host.backends == {"onnxruntime": onnx}
    assert host.schedulers == {"dynamic_batching": dyn}
    assert host.frontends == {"http": http}
    assert host.metrics_sinks == {"prometheus": sink}
    assert host.backend_for_platform("onnxruntime_onnx") is onnx
    assert host.backend_for_platform("tensorrt_plan") is None
    assert host.backend_for_file("model.onnxruntime") is onnx
    assert host.backend_for_file("model.ort") is onnx
    assert host.backend_for_file("model.pt") is None
    assert host.owner("backend", "onnxruntime").name == "backend_onnx"
    assert host.owner("scheduler", "dynamic_batching").name == "misc"
    assert host.owner("scheduler", "dynamic").name == "misc"
    assert host.owner("metrics_sink", "prometheus").name == "misc"
    assert host.flag_owner("--http-port") == ("frontend", "http")
    assert host.flag_owner("--allow-http") == ("frontend", "http")
    with pytest.raises(KeyError):
        host.owner("backend", "missing")
    with pytest.raises(KeyError):
        host.owner("widget", "x")
    assert host.plugins() == [
        PluginInfo(name="backend_onnx", components=("backend:onnxruntime",)),
        PluginInfo(name="misc", components=("scheduler:dynamic", "frontend:http", "metrics_sink:prometheus")),
    ]
    with pytest.raises(TypeError):
        host.backends["x"] = onnx  # type: ignore[index]


def test_hooks_returning_none_or_nothing_register_nothing() -> None:
    host = loaded(("empty", plugin("e", backends=None, frontends=[])), ("bare", types.ModuleType("bare")))
    assert host.backends == {} and host.frontends == {}
    assert [p.components for p in host.plugins()] == [(), ()]


def test_plugin_given_as_object_or_module_name() -> None:
    class Obj:
        @tritium.hookimpl
        def tritium_register_backends(self) -> list[BackendSpec]:
            return [backend("obj")]

    host = loaded(("object", Obj()), ("fakes", "tritium.testing.fakes"))
    assert set(host.backends) == {"obj", "identity"}


def test_add_hookspecs_called_once_before_registration() -> None:
    calls: list[Any] = []

    class Specs:
        @pluggy.HookspecMarker("tritium")
        def my_extension_point(self) -> None:
            """An extension point of a plugin."""

    module = plugin("ext", backends=lambda: calls.append("register") or [])

    @tritium.hookimpl
    def tritium_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
        calls.append(("specs", pluginmanager))
        pluginmanager.add_hookspecs(Specs)

    module.tritium_add_hookspecs = tritium_add_hookspecs  # type: ignore[attr-defined]
    implementer = types.ModuleType("impl")
    implementer.my_extension_point = tritium.hookimpl(lambda: None)  # type: ignore[attr-defined]
    host = loaded(("ext", module), ("impl", implementer))
    assert calls == [("specs", host.plugin_manager), "register"]
    assert host.plugin_manager.hook.my_extension_point.get_hookimpls()


def test_load_twice_is_refused() -> None:
    host = loaded()
    with pytest.raises(RuntimeError):
        host.load()


# ------------------------------------------------------------------------------------- duplicates
@pytest.mark.parametrize(
    ("first", "second", "what"),
    [
        ({"backends": [backend("x")]}, {"backends": [backend("x")]}, "backend 'x'"),
        (
            {"backends": [backend("x", platforms=["plat"])]},
            {"backends": [backend("y", platforms=["plat"])]},
            "platform 'plat'",
        ),
        (
            {"schedulers": [SchedulerSpec("one", "sequence_batching", _factory)]},
            {"schedulers": [SchedulerSpec("two", "sequence_batching", _factory)]},
            "the scheduler for 'sequence_batching'",
        ),
        (
            {"schedulers": [SchedulerSpec("one", "", _factory)]},
            {"schedulers": [SchedulerSpec("two", "", _factory)]},
            "the scheduler for models without one",
        ),
        ({"frontends": [frontend("http")]}, {"frontends": [frontend("http")]}, "frontend 'http'"),
        (
            {"metrics_sinks": [MetricsSinkSpec("m", _factory)]},
            {"metrics_sinks": [MetricsSinkSpec("m", _factory)]},
            "metrics sink 'm'",
        ),
        (
            {"frontends": [frontend("a", enable_flag="--allow-x")]},
            {"metrics_sinks": [MetricsSinkSpec("b", _factory, enable_flag="--allow-x")]},
            "flag --allow-x",
        ),
        (
            {"frontends": [frontend("a", options=[OptionSpec("port", int, 1, "", flag="--x-port")])]},
            {"frontends": [frontend("b", options=[OptionSpec("port", int, 1, "", flag="--x-port")])]},
            "flag --x-port",
        ),
    ],
)
def test_duplicates_name_both_plugins(first: dict[str, Any], second: dict[str, Any], what: str) -> None:
    with pytest.raises(PluginError) as caught:
        loaded(("plugin_one", plugin("one", **first)), ("plugin_two", plugin("two", **second)))
    message = str(caught.value)
    assert "plugin 'plugin_one'" in message and "plugin 'plugin_two'" in message
    assert what in message
    assert "--disable-plugin" in message


def test_duplicate_in_one_plugin() -> None:
    with pytest.raises(PluginError, match=r"plugin 'twice' \(in-process\): declares backend 'x' twice"):
        loaded(("twice", plugin("t", backends=[backend("x"), backend("x")])))


def test_two_backends_sharing_a_file_name_first_wins() -> None:
    host = loaded(
        ("first", plugin("a", backends=[backend("a", default_model_filename="model.onnx")])),
        ("second", plugin("b", backends=[backend("b", default_model_filename="model.onnx")])),
    )
    assert host.backend_for_file("model.onnx") is host.backends["a"]


def test_same_scheduler_name_for_two_sections_is_fine() -> None:
    host = loaded(
        ("one", plugin("a", schedulers=[SchedulerSpec("s", "", _factory)])),
        ("two", plugin("b", schedulers=[SchedulerSpec("s", "dynamic_batching", _factory)])),
    )
    assert set(host.schedulers) == {"", "dynamic_batching"}


def test_kernel_flag_is_refused() -> None:
    spec = frontend("x", options=[OptionSpec("repo", str, "", "", flag="--model-repository")])
    with pytest.raises(PluginError, match="declares flag --model-repository, which is a kernel flag"):
        loaded(("bad", plugin("b", frontends=[spec])))


def test_same_object_under_two_names() -> None:
    module = plugin("m", backends=[backend("x")])
    with pytest.raises(PluginError, match="same object as plugin 'a'"):
        loaded(("a", module), ("b", module))


# ------------------------------------------------------------------------------------- validation
def _raises() -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"backends": "onnx"}, "tritium_register_backends returned str, expected a list of BackendSpec"),
        ({"backends": backend("x")}, "returned BackendSpec, expected a list of BackendSpec"),
        ({"backends": {"x": 1}}, "returned dict"),
        ({"backends": [None]}, "returned a list containing NoneType None, expected BackendSpec"),
        ({"frontends": [backend("x")]}, "expected FrontendSpec"),
        ({"schedulers": _raises}, r"tritium_register_schedulers raised RuntimeError: boom"),
        ({"backends": [backend("x", platforms="onnx")]}, "platforms must be a list of strings"),
        ({"backends": [backend("x", default_model_filename="")]}, "default_model_filename"),
        ({"backends": [BackendSpec("x", "nope", "m")]}, "factory 'nope' is not callable"),  # type: ignore[arg-type]
        ({"backends": [backend("has space")]}, "name 'has space' is invalid"),
        ({"backends": [backend("x", availability="yes")]}, "availability must be callable"),
        ({"schedulers": [SchedulerSpec("s", "batching", _factory)]}, "config_section 'batching' is not one of"),
        ({"frontends": [frontend("x", enable_flag="allow")]}, "enable_flag 'allow' is not a long flag"),
        ({"frontends": [frontend("x", options=["port"])]}, "options contains 'port', not an OptionSpec"),
        ({"frontends": [frontend("x", options=[OptionSpec("p", dict, {}, "")])]}, "type <class 'dict'>"),
        ({"frontends": [frontend("x", options=[OptionSpec("p", int, "8000", "")])]}, "default '8000' is not a int"),
        ({"frontends": [frontend("x", options=[OptionSpec("p", int, True, "")])]}, "default True is not a int"),
        ({"frontends": [frontend("x", options=[OptionSpec("enabled", bool, True, "")])]}, "'enabled'"),
        ({"frontends": [frontend("x", options=[OptionSpec("p", int, 1, "", flag="-p")])]}, "flag '-p'"),
        ({"frontends": [frontend("x", options=[OptionSpec("p", int, 1, "", choices=["1"])])]}, "choices only"),
        (
            {"frontends": [frontend("x", options=[OptionSpec("p", int, 1, ""), OptionSpec("p", int, 1, "")])]},
            "option 'p' declared twice",
        ),
    ],
)
def test_invalid_declarations_are_attributed(hooks: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=r"^plugin 'culprit' \(in-process\): ") as caught:
        loaded(("good", plugin("g", backends=[backend("fine")])), ("culprit", plugin("c", **hooks)))
    assert message in str(caught.value) or pytest.fail(str(caught.value))


def test_unknown_hook_implementation() -> None:
    module = types.ModuleType("typo")
    module.tritium_register_backend = tritium.hookimpl(lambda: [])  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"plugin 'typo' \(in-process\): implements an unknown hook") as caught:
        loaded(("typo", module))
    assert str(caught.value).endswith("(did you mean tritium_register_backends?)")


def test_hook_with_unknown_argument() -> None:
    module = types.ModuleType("args")

    def tritium_register_backends(server: object) -> list[BackendSpec]:
        return []

    module.tritium_register_backends = tritium.hookimpl(tritium_register_backends)  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"plugin 'args' \(in-process\): invalid hook implementation"):
        loaded(("args", module))


def test_wrapper_is_refused() -> None:
    module = types.ModuleType("wrap")

    def tritium_register_backends() -> Any:
        return (yield)

    module.tritium_register_backends = tritium.hookimpl(wrapper=True)(tritium_register_backends)  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="must be a plain hook implementation"):
        loaded(("wrap", module))


def test_import_error_names_the_module() -> None:
    with pytest.raises(PluginError) as caught:
        loaded(("ghost", "tritium_no_such_module_xyz"))
    assert str(caught.value) == (
        "plugin 'ghost' (in-process): cannot import 'tritium_no_such_module_xyz': "
        "ModuleNotFoundError: No module named 'tritium_no_such_module_xyz'"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


# ---------------------------------------------------------------------------------- non-strict mode
def test_non_strict_records_errors_and_keeps_the_rest() -> None:
    host = loaded(
        ("good", plugin("g", backends=[backend("fine")])),
        ("ghost", "tritium_no_such_module_xyz"),
        ("bad", plugin("b", backends="nope", frontends=[frontend("f")])),
        ("dup", plugin("d", backends=[backend("fine")])),
        strict=False,
    )
    infos = {info.name: info for info in host.plugins()}
    assert infos["good"].error is None and infos["good"].components == ("backend:fine",)
    assert "cannot import" in (infos["ghost"].error or "")
    assert "returned str" in (infos["bad"].error or "") and infos["bad"].components == ()
    assert "already provides" in (infos["dup"].error or "")
    assert set(host.backends) == {"fine"} and host.owner("backend", "fine").name == "good"
    assert host.frontends == {}  # a broken plugin contributes nothing, not even its valid parts
    assert host.plugin_manager.get_plugin("bad") is None


def test_non_strict_unknown_hook_unregisters_only_that_plugin() -> None:
    typo = types.ModuleType("typo")
    typo.tritium_register_frontend = tritium.hookimpl(lambda: [])  # type: ignore[attr-defined]
    host = loaded(("typo", typo), ("good", plugin("g", backends=[backend("x")])), strict=False)
    infos = {info.name: info for info in host.plugins()}
    assert "unknown hook" in (infos["typo"].error or "")
    assert set(host.backends) == {"x"}


# ---------------------------------------------------------------------------------------- blocking
def test_blocked_plugin_is_listed_but_not_imported() -> None:
    host = loaded(
        ("ghost", "tritium_no_such_module_xyz"),
        ("good", plugin("g", backends=[backend("x")])),
        disabled=("ghost", "typo_name"),
    )
    infos = {info.name: info for info in host.plugins()}
    assert infos["ghost"].blocked and infos["ghost"].error is None and infos["ghost"].components == ()
    assert host.unmatched_disabled() == ["typo_name"]


def test_blocking_removes_a_duplicate() -> None:
    host = loaded(
        ("one", plugin("a", backends=[backend("x")])),
        ("two", plugin("b", backends=[backend("x")])),
        disabled=("one",),
    )
    assert host.owner("backend", "x").name == "two"


# ------------------------------------------------------------------------------------ availability
def test_unavailable_backends() -> None:
    def broken() -> str:
        raise ImportError("numpy too old")

    host = loaded(
        (
            "p",
            plugin(
                "p",
                backends=[
                    backend("ok", availability=lambda: None),
                    backend("plain"),
                    backend("missing", availability=lambda: "install onnxruntime"),
                    backend("broken", availability=broken),
                    backend("odd", availability=lambda: 42),
                ],
            ),
        )
    )
    assert host.unavailable_backends() == {
        "missing": "install onnxruntime",
        "broken": "availability check failed: ImportError: numpy too old",
        "odd": "availability check returned 42",
    }


# ----------------------------------------------------------------------------- real entry points
def write_distribution(
    root: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
) -> Path:
    """A minimal installed distribution (``*.dist-info`` with ``entry_points.txt``) under ``root``."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[tritium.plugins]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(source)
    return root


GOOD_MODULE = """
import tritium

@tritium.hookimpl
def tritium_register_backends():
    return [tritium.BackendSpec(name="tmpbackend", factory=dict, default_model_filename="model.tmp")]
"""


def installed_others(*keep: str) -> tuple[str, ...]:
    """Entry-point names installed in this environment, to block them so a test sees only its own."""
    return tuple(ep.name for ep in importlib.metadata.entry_points(group="tritium.plugins") if ep.name not in keep)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("tmp_plugin_")]:
        del sys.modules[name]


def test_entry_point_discovery_with_distribution_and_version(site: Path) -> None:
    write_distribution(site, "tmp-dist", "1.2.3", {"tmp_good": "tmp_plugin_good"}, {"tmp_plugin_good": GOOD_MODULE})
    host = PluginHost(disabled=installed_others("tmp_good", "builtin"))
    host.load()
    infos = {info.name: info for info in host.plugins()}
    assert infos["tmp_good"] == PluginInfo(
        name="tmp_good", distribution="tmp-dist", version="1.2.3", components=("backend:tmpbackend",)
    )
    assert infos["builtin"].distribution == "tritium" and host.plugins()[0].name == "builtin"
    assert "scheduler:default" in infos["builtin"].components
    assert host.owner("backend", "tmpbackend").label == "plugin 'tmp_good' (distribution tmp-dist 1.2.3)"


def test_broken_entry_point_is_attributed(site: Path) -> None:
    write_distribution(site, "tmp-broken", "0.4.0", {"tmp_broken": "tmp_plugin_missing:hooks"})
    host = PluginHost(disabled=installed_others("tmp_broken"))
    with pytest.raises(PluginError) as caught:
        host.load()
    assert str(caught.value) == (
        "plugin 'tmp_broken' (distribution tmp-broken 0.4.0): cannot import 'tmp_plugin_missing:hooks': "
        "ModuleNotFoundError: No module named 'tmp_plugin_missing'"
    )


def test_plugin_raising_at_import(site: Path) -> None:
    write_distribution(
        site,
        "tmp-raise",
        "2.0",
        {"tmp_raise": "tmp_plugin_raise"},
        {"tmp_plugin_raise": "raise ValueError('bad config')\n"},
    )
    host = PluginHost(disabled=installed_others("tmp_raise"))
    host.load(strict=False)
    (info,) = host.plugins()[-1:]
    assert info.name == "tmp_raise" and info.version == "2.0"
    assert info.error == (
        "plugin 'tmp_raise' (distribution tmp-raise 2.0): cannot import 'tmp_plugin_raise': ValueError: bad config"
    )


def test_blocked_entry_point_is_never_imported(site: Path) -> None:
    write_distribution(
        site, "tmp-raise", "2.0", {"tmp_raise": "tmp_plugin_raise2"}, {"tmp_plugin_raise2": "raise SystemExit(3)\n"}
    )
    host = PluginHost(disabled=(*installed_others("builtin"), "tmp_raise"))
    host.load()
    assert "tmp_plugin_raise2" not in sys.modules
    assert [i.name for i in host.plugins() if i.blocked and i.name == "tmp_raise"] == ["tmp_raise"]


def test_two_distributions_with_one_entry_point_name(site: Path) -> None:
    write_distribution(site / "a", "tmp-one", "1.0", {"tmp_same": "tmp_plugin_one"}, {"tmp_plugin_one": GOOD_MODULE})
    write_distribution(site / "b", "tmp-two", "1.0", {"tmp_same": "tmp_plugin_two"}, {"tmp_plugin_two": GOOD_MODULE})
    sys.path[:0] = [str(site / "a"), str(site / "b")]
    try:
        host = PluginHost(disabled=installed_others("tmp_same"))
        with pytest.raises(PluginError, match="two plugins are named 'tmp_same'") as caught:
            host.load()
        assert "tmp-one 1.0" in str(caught.value) and "tmp-two 1.0" in str(caught.value)
        lenient = PluginHost(disabled=installed_others("tmp_same"))
        lenient.load(strict=False)
        errors = [i for i in lenient.plugins() if i.error]
        assert len(errors) == 1 and "two plugins are named" in (errors[0].error or "")
    finally:
        sys.path.remove(str(site / "a"))
        sys.path.remove(str(site / "b"))
