"""``PluginPackagingConformance``: the tests every installed plugin distribution inherits.

Name your distribution and entry point; the tests check what a server needs to load the plugin::

    class TestPackaging(PluginPackagingConformance):
        distribution = "tritium-backend-repeat"
        entry_point = "backend_repeat"

A frontend or metrics sink may import its own server library at import time: list it in
``allowed_imports`` (e.g. ``("grpc",)``). Frameworks (``FRAMEWORKS``) must never be imported at import
time: a plugin imports them inside the component that needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any, ClassVar

import pluggy
import pytest

from tritium import hookspecs
from tritium._base.specs import BackendSpec, FrontendSpec, MetricsSinkSpec, OptionSpec, SchedulerSpec
from tritium.abc import Backend

__all__ = [
    "FRAMEWORKS",
    "GROUP",
    "SERVER_LIBRARIES",
    "TEST_LIBRARIES",
    "PluginPackagingConformance",
    "imported_modules",
]

GROUP = "tritium.plugins"
FRAMEWORKS = (
    "onnxruntime",
    "onnx",
    "torch",
    "tensorflow",
    "tensorrt",
    "jax",
    "openvino",
    "paddle",
    "transformers",
)
"""Heavy frameworks no plugin may import when it is loaded."""
SERVER_LIBRARIES = ("grpc", "aiohttp", "uvicorn", "starlette", "fastapi", "tritonclient", "prometheus_client")
"""Network libraries only the plugin serving that protocol may import when loaded (``allowed_imports``)."""
TEST_LIBRARIES = ("pytest", "hypothesis", "tritium.testing")
"""Test dependencies: never imported by a plugin module."""

HOOKS: dict[str, type] = {
    "tritium_register_backends": BackendSpec,
    "tritium_register_schedulers": SchedulerSpec,
    "tritium_register_frontends": FrontendSpec,
    "tritium_register_metrics_sinks": MetricsSinkSpec,
}

_PROBE = """
import json, sys
from importlib.metadata import distribution
dist = distribution(sys.argv[1])
ep = next(e for e in dist.entry_points if e.group == sys.argv[2] and e.name == sys.argv[3])
plugin = ep.load()
for hook in sys.argv[4:]:
    fn = getattr(plugin, hook, None)
    if callable(fn):
        fn()
print(json.dumps(sorted(sys.modules)))
"""


def imported_modules(dist: str, entry_point: str, call_hooks: bool = True) -> list[str]:
    """Modules loaded in a fresh interpreter after loading the entry point (and calling its register
    hooks, which must stay as cheap as the import)."""
    hooks = list(HOOKS) if call_hooks else []
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, dist, GROUP, entry_point, *hooks],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"loading entry point {entry_point!r} failed:\n{result.stderr}")
    modules: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return modules


def _matches(module: str, names: Sequence[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _call_hook(plugin: Any, hook: str) -> list[Any] | None:
    fn = getattr(plugin, hook, None)
    if not callable(fn):
        return None
    result = fn()
    assert isinstance(result, (list, tuple)), f"{hook} must return a list, got {type(result).__name__}"
    return list(result)


class PluginPackagingConformance:
    """Inherited tests of an installed plugin distribution. Set ``distribution`` and ``entry_point``;
    optionally ``allowed_imports`` (server libraries this plugin may import when loaded) or replace
    ``forbidden_imports`` altogether."""

    distribution: ClassVar[str] = ""
    entry_point: ClassVar[str] = ""
    forbidden_imports: ClassVar[Sequence[str]] = FRAMEWORKS + SERVER_LIBRARIES + TEST_LIBRARIES
    allowed_imports: ClassVar[Sequence[str]] = ()

    @pytest.fixture
    def plugin_entry_point(self) -> EntryPoint:
        """The plugin's entry point in group ``tritium.plugins``, from its own distribution."""
        if not self.distribution or not self.entry_point:
            pytest.fail(f"{type(self).__name__} must set 'distribution' and 'entry_point'")
        try:
            dist = distribution(self.distribution)
        except PackageNotFoundError:
            pytest.fail(f"distribution {self.distribution!r} is not installed")
        found = [ep for ep in dist.entry_points if ep.group == GROUP and ep.name == self.entry_point]
        assert found, (
            f"{self.distribution} declares no entry point {self.entry_point!r} in group {GROUP!r}; "
            f"it declares {[(ep.group, ep.name) for ep in dist.entry_points]}"
        )
        return found[0]

    @pytest.fixture
    def plugin(self, plugin_entry_point: EntryPoint) -> Any:
        """The loaded plugin object (usually a module)."""
        return plugin_entry_point.load()

    # ------------------------------------------------------------------------------------- tests
    def test_entry_point_loads(self, plugin: Any) -> None:
        assert plugin is not None

    def test_pins_a_compatible_kernel_range(self) -> None:
        """The distribution requires ``tritium`` within one plugin API (``>=0.N,<0.N+1``), and the installed
        kernel is inside that range: a kernel whose contract changed is never installed under the plugin."""
        from packaging.requirements import Requirement

        import tritium

        if self.distribution == "tritium":
            return  # the kernel's own built-in plugins come with the kernel
        pins = [
            Requirement(raw)
            for raw in distribution(self.distribution).requires or ()
            if Requirement(raw).name == "tritium" and Requirement(raw).marker is None
        ]
        assert pins, f"{self.distribution} does not depend on tritium"
        for pin in pins:
            uppers = [spec for spec in pin.specifier if spec.operator in ("<", "<=", "~=", "==")]
            assert uppers, (
                f"{self.distribution} requires {pin}: pin the kernel range of the plugin API it was written "
                f"against, e.g. 'tritium>=0.{tritium.PLUGIN_API_VERSION},<0.{tritium.PLUGIN_API_VERSION + 1}'"
            )
            assert pin.specifier.contains(tritium.__version__, prereleases=True), (
                f"{self.distribution} requires {pin}, but tritium {tritium.__version__} is installed"
            )

    def test_import_pulls_in_no_heavy_module(self) -> None:
        modules = imported_modules(self.distribution, self.entry_point)
        forbidden = [n for n in self.forbidden_imports if not _matches(n, self.allowed_imports)]
        heavy = sorted({n for n in forbidden for m in modules if _matches(m, [n])})
        assert not heavy, (
            f"loading plugin {self.entry_point!r} (and calling its register hooks) imported {heavy}: "
            "import frameworks inside the component that needs them"
        )

    def test_hooks_match_the_hookspecs(self, plugin: Any) -> None:
        unmarked = [
            name
            for name in dir(plugin)
            if name.startswith("tritium_")
            and callable(getattr(plugin, name))
            and not hasattr(getattr(plugin, name), f"{hookspecs.PROJECT_NAME}_impl")
        ]
        assert not unmarked, f"{unmarked} look like hooks but lack @tritium.hookimpl"
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        manager.register(plugin, name=self.entry_point)  # validates argument names against the specs
        manager.check_pending()  # fails on hookimpls with no matching hookspec (typos)

    def test_register_hooks_return_specs(self, plugin: Any) -> None:
        total = 0
        for hook, spec_type in HOOKS.items():
            specs = _call_hook(plugin, hook)
            for spec in specs or ():
                assert isinstance(spec, spec_type), f"{hook} returned a {type(spec).__name__}"
                total += 1
        assert total, "the plugin registers no component"

    def test_component_names_are_unique(self, plugin: Any) -> None:
        for hook in HOOKS:
            names = [spec.name for spec in _call_hook(plugin, hook) or ()]
            assert all(isinstance(n, str) and n for n in names), f"{hook}: empty or non-string name"
            assert len(names) == len(set(names)), f"{hook} registers a name twice: {names}"

    def test_names_do_not_clash_with_other_installed_plugins(self, plugin: Any) -> None:
        ours = {hook: {spec.name for spec in _call_hook(plugin, hook) or ()} for hook in HOOKS}
        clashes = []
        for ep in entry_points(group=GROUP):
            if ep.name == self.entry_point:
                continue
            try:
                other = ep.load()
            except Exception:  # another plugin's breakage is not this plugin's failure
                continue
            for hook, names in ours.items():
                try:
                    theirs = {spec.name for spec in _call_hook(other, hook) or ()}
                except Exception:
                    continue
                clashes += [f"{hook[len('tritium_register_') :]} {n!r} (also in {ep.name})" for n in names & theirs]
        assert not clashes, f"component names already taken: {clashes}"

    def test_backend_specs_are_well_formed(self, plugin: Any) -> None:
        for spec in _call_hook(plugin, "tritium_register_backends") or ():
            assert callable(spec.factory), f"backend {spec.name!r}: factory is not callable"
            assert spec.default_model_filename, f"backend {spec.name!r}: no default_model_filename"
            assert all(isinstance(p, str) and p for p in spec.platforms), f"backend {spec.name!r}: platforms"

    def test_backend_factories_build_backends(self, plugin: Any) -> None:
        for spec in _call_hook(plugin, "tritium_register_backends") or ():
            backend = spec.factory({})
            assert isinstance(backend, Backend), f"backend {spec.name!r}: factory returned {backend!r}"
            reason = backend.availability()
            assert reason is None or isinstance(reason, str), f"availability() returned {reason!r}"

    def test_component_options_are_well_formed(self, plugin: Any) -> None:
        for hook in ("tritium_register_frontends", "tritium_register_metrics_sinks"):
            for spec in _call_hook(plugin, hook) or ():
                assert callable(spec.factory), f"{spec.name!r}: factory is not callable"
                if spec.enable_flag is not None:
                    assert spec.enable_flag.startswith("--"), f"{spec.name!r}: enable_flag {spec.enable_flag!r}"
                names = [o.name for o in spec.options]
                assert len(names) == len(set(names)), f"{spec.name!r}: duplicate option names {names}"
                for option in spec.options:
                    self._check_option(spec.name, option)

    @staticmethod
    def _check_option(component: str, option: OptionSpec) -> None:
        where = f"{component!r} option {option.name!r}"
        assert option.type in (bool, int, float, str, list), f"{where}: type {option.type!r}"
        assert option.flag is None or option.flag.startswith("--"), f"{where}: flag {option.flag!r}"
        assert option.help, f"{where}: no help text"
        if option.choices is not None:
            assert option.default in option.choices or option.default is None, f"{where}: default not a choice"
