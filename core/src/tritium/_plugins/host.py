"""The plugin host: finds plugins, calls their registration hooks once, and keeps what they declare.

Plugins are modules (or objects) exposed as entry points of the group ``tritium.plugins``; the kernel's
own components come the same way (entry point ``builtin`` -> :mod:`tritium._runtime.builtin`). Loading goes:

1. discover the entry points (plus any ``extra_plugins`` given in-process), skip blocked names;
2. import each and register it with a fresh :class:`pluggy.PluginManager` (one per host, never global);
3. call every ``tritium_add_hookspecs`` once, then check that every hook implementation matches a spec;
4. call each plugin's ``tritium_register_*`` hooks once, one plugin at a time, so that every bad
   declaration and every duplicate is attributed to a plugin, its distribution and its version.

The kernel reads the result through typed registries (:attr:`PluginHost.backends`, ...); it never calls
``pm.hook.*`` itself, and pluggy is never on the request path.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from tritium import hookspecs
from tritium._base.errors import PluginError
from tritium._base.specs import BackendSpec, FrontendSpec, MetricsSinkSpec, OptionSpec, SchedulerSpec
from tritium._plugins.flags import KERNEL_FLAG_NAMES

__all__ = ["ENTRY_POINT_GROUP", "KINDS", "PluginHost", "PluginInfo"]

ENTRY_POINT_GROUP = "tritium.plugins"
BUILTIN_PLUGIN = "builtin"
KINDS = ("backend", "scheduler", "frontend", "metrics_sink")
SCHEDULER_SECTIONS = ("", "dynamic_batching", "sequence_batching", "ensemble_scheduling")
OPTION_TYPES: tuple[type, ...] = (bool, int, float, str, list)

_log = logging.getLogger("tritium.plugins")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_OPTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLAG_RE = re.compile(r"^--[a-z0-9][a-z0-9\-]*$")
_HOOKS: tuple[tuple[str, str, type], ...] = (
    ("backend", "tritium_register_backends", BackendSpec),
    ("scheduler", "tritium_register_schedulers", SchedulerSpec),
    ("frontend", "tritium_register_frontends", FrontendSpec),
    ("metrics_sink", "tritium_register_metrics_sinks", MetricsSinkSpec),
)


@attrs.define(frozen=True)
class PluginInfo:
    """What ``tritium plugins`` shows about one plugin.

    ``name`` is the entry-point name; ``distribution``/``version`` the installed package that declares it
    (empty for a plugin given in-process); ``components`` are ``"<kind>:<name>"`` strings such as
    ``"backend:onnxruntime"``; ``error`` says why it could not be loaded; ``blocked`` is true when
    ``--disable-plugin`` named it.
    """

    name: str
    distribution: str = ""
    version: str = ""
    components: tuple[str, ...] = ()
    error: str | None = None
    blocked: bool = False

    @property
    def label(self) -> str:
        """``plugin 'x' (distribution d 1.0)``: how every error message names a plugin."""
        if self.distribution:
            return f"plugin {self.name!r} (distribution {self.distribution} {self.version})"
        return f"plugin {self.name!r} (in-process)"


@attrs.define
class _Candidate:
    """A plugin found but not yet imported."""

    info: PluginInfo
    load: Callable[[], object]
    target: str


@attrs.define
class _Declared:
    """One plugin's validated declarations, before they are merged into the registries."""

    backends: list[BackendSpec] = attrs.field(factory=list)
    schedulers: list[SchedulerSpec] = attrs.field(factory=list)
    frontends: list[FrontendSpec] = attrs.field(factory=list)
    metrics_sinks: list[MetricsSinkSpec] = attrs.field(factory=list)


class PluginHost:
    """Loads plugins once and answers which component serves what.

    ``disabled`` blocks plugins by entry-point name (``--disable-plugin``). ``extra_plugins`` are
    ``(name, module-or-object)`` pairs registered like entry points (a string is imported as a module
    name): the in-process API and tests use them. ``discover=False`` skips the entry points, so only the
    extra plugins load.
    """

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        extra_plugins: Sequence[tuple[str, object]] = (),
        discover: bool = True,
    ) -> None:
        self._disabled = frozenset(disabled)
        self._extra = tuple(extra_plugins)
        self._discover = discover
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._loaded = False
        self._infos: dict[str, PluginInfo] = {}
        self._order: list[str] = []
        self._backends: dict[str, BackendSpec] = {}
        self._schedulers: dict[str, SchedulerSpec] = {}
        self._frontends: dict[str, FrontendSpec] = {}
        self._metrics_sinks: dict[str, MetricsSinkSpec] = {}
        self._platforms: dict[str, str] = {}
        self._files: dict[str, str] = {}
        self._flags: dict[str, tuple[str, str]] = {}
        self._owners: dict[tuple[str, str], str] = {}
        self._scheduler_names: dict[str, str] = {}

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` ran."""
        return self._loaded

    # ------------------------------------------------------------------------------------ registries
    @property
    def backends(self) -> Mapping[str, BackendSpec]:
        """Backends by name (what ``backend:`` names in a model config)."""
        return types.MappingProxyType(self._backends)

    @property
    def schedulers(self) -> Mapping[str, SchedulerSpec]:
        """Schedulers by the config section they serve (``""`` is the default scheduler)."""
        return types.MappingProxyType(self._schedulers)

    @property
    def frontends(self) -> Mapping[str, FrontendSpec]:
        """Frontends by name (``http``, ``grpc``, ...)."""
        return types.MappingProxyType(self._frontends)

    @property
    def metrics_sinks(self) -> Mapping[str, MetricsSinkSpec]:
        """Metrics sinks by name (``prometheus``, ...)."""
        return types.MappingProxyType(self._metrics_sinks)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """This host's pluggy manager (for plugins that add their own hookspecs)."""
        return self._pm

    def backend_for_platform(self, platform: str) -> BackendSpec | None:
        """The backend serving a ``platform:`` string (e.g. ``onnxruntime_onnx``), None if none does."""
        name = self._platforms.get(platform)
        return None if name is None else self._backends[name]

    def backend_for_file(self, filename: str) -> BackendSpec | None:
        """The backend whose default (or extra) model file name is ``filename`` (e.g. ``model.onnx``).

        When two backends claim one file name, the first loaded wins (the built-ins, then plugins in
        entry-point name order); a config can always name its backend explicitly."""
        name = self._files.get(filename)
        return None if name is None else self._backends[name]

    def owner(self, kind: str, name: str) -> PluginInfo:
        """The plugin that declared a component; ``name`` is the registry key (for schedulers the
        config section, or the scheduler's name). Raises KeyError when no plugin declared it."""
        if kind not in KINDS:
            raise KeyError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
        plugin = self._owners.get((kind, name))
        if plugin is None and kind == "scheduler" and name in self._scheduler_names:
            plugin = self._owners.get((kind, self._scheduler_names[name]))
        if plugin is None:
            raise KeyError(f"no {kind} named {name!r}")
        return self._infos[plugin]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin found, loaded or not, in load order (blocked and broken ones included)."""
        return [self._infos[name] for name in self._order]

    def flag_owner(self, flag: str) -> tuple[str, str] | None:
        """``(kind, name)`` of the component declaring a command-line flag (options and enable flags)."""
        return self._flags.get(flag)

    def unmatched_disabled(self) -> list[str]:
        """Names given to ``--disable-plugin`` that match no plugin (probably a typo)."""
        return sorted(self._disabled - set(self._infos))

    def unavailable_backends(self) -> dict[str, str]:
        """Backend name -> why it cannot be used, from each backend's cheap ``availability`` check.

        Never raises: a failing check is reported as the reason."""
        reasons: dict[str, str] = {}
        for name, spec in self._backends.items():
            if spec.availability is None:
                continue
            try:
                reason = spec.availability()
            except Exception as exc:
                reasons[name] = f"availability check failed: {type(exc).__name__}: {exc}"
                continue
            if reason is None:
                continue
            reasons[name] = reason if isinstance(reason, str) else f"availability check returned {reason!r}"
        return reasons

    # --------------------------------------------------------------------------------------- loading
    def load(self, *, strict: bool = True) -> None:
        """Discover, import and register every plugin, then call the registration hooks once.

        With ``strict`` (what ``tritium serve`` uses), the first problem raises :class:`PluginError`
        naming the plugin, its distribution and version, and the cause. Without it (``tritium plugins``),
        a broken plugin is recorded in its :class:`PluginInfo` and contributes nothing.
        """
        if self._loaded:
            raise RuntimeError("PluginHost.load() was already called")
        self._loaded = True
        for candidate in self._candidates(strict):
            self._import_and_register(candidate, strict)
        self._add_hookspecs(strict)
        self._check_pending(strict)
        for name in list(self._order):
            if self._infos[name].error is None and not self._infos[name].blocked:
                self._register_components(name, strict)
        for name in self.unmatched_disabled():
            _log.debug("--disable-plugin %s: no plugin of that name is installed", name)

    def _candidates(self, strict: bool) -> list[_Candidate]:
        found: list[_Candidate] = []
        if self._discover:
            eps = sorted(
                importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                key=lambda ep: (ep.name != BUILTIN_PLUGIN, ep.name, ep.value),
            )
            for ep in eps:
                dist = ep.dist
                info = PluginInfo(
                    name=ep.name,
                    distribution=dist.name if dist is not None else "unknown",
                    version=dist.version if dist is not None else "unknown",
                )
                found.append(_Candidate(info=info, load=ep.load, target=ep.value))
        for name, obj in self._extra:
            found.append(_Candidate(info=PluginInfo(name=name), load=_loader(obj), target=_describe_target(obj)))
        unique: list[_Candidate] = []
        seen: dict[str, PluginInfo] = {}
        for candidate in found:
            info = candidate.info
            first = seen.get(info.name)
            if first is not None and (first == info or info.name in self._disabled):
                continue  # one distribution seen twice on sys.path, or a blocked name (never imported)
            if first is not None:
                message = f"two plugins are named {info.name!r}: {first.label} and {info.label}; uninstall one of them"
                if strict:
                    raise PluginError(message)
                self._record(attrs.evolve(info, name=f"{info.name} ({info.distribution or 'in-process'})"))
                self._fail(f"{info.name} ({info.distribution or 'in-process'})", message)
                continue
            seen[info.name] = info
            unique.append(candidate)
        return unique

    def _record(self, info: PluginInfo) -> None:
        self._infos[info.name] = info
        self._order.append(info.name)

    def _fail(self, name: str, message: str) -> None:
        self._infos[name] = attrs.evolve(self._infos[name], error=message, components=())
        plugin = self._pm.get_plugin(name)
        if plugin is not None:
            self._pm.unregister(plugin, name=name)

    def _import_and_register(self, candidate: _Candidate, strict: bool) -> None:
        info = candidate.info
        blocked = info.name in self._disabled
        self._record(attrs.evolve(info, blocked=blocked))
        if blocked:
            return
        try:
            plugin = candidate.load()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._problem(info.name, f"cannot import {candidate.target!r}: {_cause(exc)}", strict, exc)
            return
        try:
            self._pm.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            self._problem(info.name, f"invalid hook implementation: {exc}", strict, exc)
        except ValueError as exc:
            other = self._pm.get_name(plugin)
            detail = f"it is the same object as plugin {other!r}" if other else str(exc)
            self._problem(info.name, f"cannot be registered: {detail}", strict, exc)

    def _problem(self, name: str, detail: str, strict: bool, cause: BaseException | None = None) -> None:
        message = f"{self._infos[name].label}: {detail}"
        if strict:
            raise PluginError(message) from cause
        _log.debug("%s", message)
        self._fail(name, message)

    def _call(self, name: str, hook_name: str, **kwargs: Any) -> tuple[bool, Any]:
        """Call one plugin's implementation of one hook: ``(implemented, result)``."""
        caller = getattr(self._pm.hook, hook_name, None)
        if caller is None:
            return False, None
        for impl in caller.get_hookimpls():
            if impl.plugin_name != name:
                continue
            if impl.hookwrapper or impl.wrapper:
                raise _HookProblem(f"{hook_name} must be a plain hook implementation, not a wrapper")
            try:
                return True, impl.function(*[kwargs[arg] for arg in impl.argnames])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise _HookProblem(f"{hook_name} raised {_cause(exc)}") from exc
        return False, None

    def _live(self) -> list[str]:
        return [n for n in self._order if self._infos[n].error is None and not self._infos[n].blocked]

    def _add_hookspecs(self, strict: bool) -> None:
        for name in self._live():
            try:
                self._call(name, "tritium_add_hookspecs", pluginmanager=self._pm)
            except _HookProblem as exc:
                self._problem(name, str(exc), strict, exc.__cause__)

    def _check_pending(self, strict: bool) -> None:
        while True:
            try:
                self._pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self._pm.get_name(exc.plugin)
                if name is None:  # pragma: no cover - pluggy always reports a registered plugin
                    raise PluginError(str(exc)) from exc
                self._problem(name, f"implements an unknown hook: {exc}{self._hook_hint(str(exc))}", strict, exc)

    def _hook_hint(self, message: str) -> str:
        match = re.search(r"unknown hook '(\w+)'", message)
        if match is None:
            return ""
        known = [
            name
            for name in dir(self._pm.hook)
            if name.startswith("tritium_") and getattr(self._pm.hook, name).has_spec()
        ]
        close = difflib.get_close_matches(match.group(1), known, n=1)
        return f" (did you mean {close[0]}?)" if close else ""

    def _register_components(self, name: str, strict: bool) -> None:
        info = self._infos[name]
        try:
            declared = self._declarations(name)
            self._check_conflicts(info, declared)
        except _HookProblem as exc:
            self._problem(name, str(exc), strict, exc.__cause__)
            return
        components: list[str] = []
        for spec in declared.backends:
            self._backends[spec.name] = spec
            self._owners["backend", spec.name] = name
            for platform in spec.platforms:
                self._platforms[platform] = spec.name
            for filename in (spec.default_model_filename, *spec.extra_model_filenames):
                self._files.setdefault(filename, spec.name)
            components.append(f"backend:{spec.name}")
        for sched in declared.schedulers:
            self._schedulers[sched.config_section] = sched
            self._owners["scheduler", sched.config_section] = name
            self._scheduler_names.setdefault(sched.name, sched.config_section)
            components.append(f"scheduler:{sched.name}")
        for frontend in declared.frontends:
            self._frontends[frontend.name] = frontend
            components.append(self._own_component("frontend", frontend, name))
        for sink in declared.metrics_sinks:
            self._metrics_sinks[sink.name] = sink
            components.append(self._own_component("metrics_sink", sink, name))
        self._infos[name] = attrs.evolve(info, components=tuple(components))

    def _own_component(self, kind: str, comp: FrontendSpec | MetricsSinkSpec, plugin: str) -> str:
        self._owners[kind, comp.name] = plugin
        for flag in _component_flags(comp):
            self._flags[flag] = (kind, comp.name)
        return f"{kind}:{comp.name}"

    def _declarations(self, name: str) -> _Declared:
        declared = _Declared()
        for kind, hook_name, spec_type in _HOOKS:
            _, result = self._call(name, hook_name)
            specs = _as_spec_list(result, hook_name, spec_type)
            for spec in specs:
                _validate_spec(kind, spec)
            target: list[Any] = getattr(declared, f"{kind}s")
            target.extend(specs)
        return declared

    def _check_conflicts(self, info: PluginInfo, declared: _Declared) -> None:
        """Reject names, platforms and flags that this plugin declares twice or that another plugin has."""
        mine: set[tuple[str, str]] = set()

        def claim(key: tuple[str, str], what: str, previous: str | None) -> None:
            if key in mine:
                raise _HookProblem(f"declares {what} twice")
            mine.add(key)
            if previous is None:
                return
            other = self._infos[previous]
            raise _HookProblem(
                f"declares {what}, which {other.label} already provides; "
                f"block one of them with --disable-plugin {info.name} or --disable-plugin {other.name}"
            )

        for spec in declared.backends:
            claim(("backend", spec.name), f"backend {spec.name!r}", self._owners.get(("backend", spec.name)))
            for platform in spec.platforms:
                backend = self._platforms.get(platform)
                previous = None if backend is None else self._owners["backend", backend]
                claim(("platform", platform), f"platform {platform!r}", previous)
        for sched in declared.schedulers:
            section = repr(sched.config_section) if sched.config_section else "models without one"
            key = ("scheduler", sched.config_section)
            claim(key, f"the scheduler for {section}", self._owners.get(key))
        for kind, specs in (("frontend", declared.frontends), ("metrics_sink", declared.metrics_sinks)):
            for comp in specs:
                key = (kind, comp.name)
                claim(key, f"{kind.replace('_', ' ')} {comp.name!r}", self._owners.get(key))
                for flag in _component_flags(comp):
                    if flag in KERNEL_FLAG_NAMES:
                        raise _HookProblem(
                            f"{kind.replace('_', ' ')} {comp.name!r} declares flag {flag}, which is a kernel flag"
                        )
                    holder = self._flags.get(flag)
                    claim(("flag", flag), f"flag {flag}", None if holder is None else self._owners[holder])


class _HookProblem(Exception):
    """A plugin's hook failed or returned something invalid (becomes a PluginError naming the plugin)."""


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _loader(obj: object) -> Callable[[], object]:
    if isinstance(obj, str):
        module, _, attribute = obj.partition(":")
        if attribute:
            return lambda: getattr(importlib.import_module(module), attribute)
        return lambda: importlib.import_module(obj)
    return lambda: obj


def plugin_reference(reference: str) -> tuple[str, str]:
    """``(name, reference)`` for a ``--plugin`` value ``module`` or ``module:object``; the name is the
    object's (else the module's last component), as shown by ``tritium plugins``."""
    module, _, attribute = reference.partition(":")
    return (attribute or module.rsplit(".", 1)[-1], reference)


def _describe_target(obj: object) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return type(obj).__qualname__


def _component_flags(comp: FrontendSpec | MetricsSinkSpec) -> list[str]:
    flags = [opt.flag for opt in comp.options if opt.flag]
    if comp.enable_flag:
        flags.append(comp.enable_flag)
    return flags


def _as_spec_list(result: object, hook_name: str, spec_type: type) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, list | tuple):
        raise _HookProblem(f"{hook_name} returned {type(result).__name__}, expected a list of {spec_type.__name__}")
    for item in result:
        if not isinstance(item, spec_type):
            raise _HookProblem(
                f"{hook_name} returned a list containing {type(item).__name__} {item!r}, expected {spec_type.__name__}"
            )
    return list(result)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise _HookProblem(message)


def _is_str_seq(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value)


def _validate_spec(kind: str, spec: Any) -> None:
    """Check one declaration's fields (types the kernel relies on), naming the offending field."""
    what = f"{kind.replace('_', ' ')} {spec.name!r}"
    _check(
        isinstance(spec.name, str) and bool(_NAME_RE.match(spec.name)),
        f"{kind.replace('_', ' ')} name {spec.name!r} is invalid (letters, digits, '_' and '-')",
    )
    _check(callable(spec.factory), f"{what}: factory {spec.factory!r} is not callable")
    if isinstance(spec, BackendSpec):
        _check(
            isinstance(spec.default_model_filename, str) and bool(spec.default_model_filename),
            f"{what}: default_model_filename must be a non-empty string",
        )
        _check(_is_str_seq(spec.platforms), f"{what}: platforms must be a list of strings")
        _check(
            _is_str_seq(spec.extra_model_filenames),
            f"{what}: extra_model_filenames must be a list of strings",
        )
        _check(
            spec.availability is None or callable(spec.availability),
            f"{what}: availability must be callable or None",
        )
    elif isinstance(spec, SchedulerSpec):
        _check(
            spec.config_section in SCHEDULER_SECTIONS,
            f"{what}: config_section {spec.config_section!r} is not one of "
            f"{', '.join(repr(s) for s in SCHEDULER_SECTIONS)}",
        )
    else:
        _check(
            spec.enable_flag is None
            or (isinstance(spec.enable_flag, str) and _FLAG_RE.match(spec.enable_flag) is not None),
            f"{what}: enable_flag {spec.enable_flag!r} is not a long flag like '--allow-http'",
        )
        _check(isinstance(spec.enabled_by_default, bool), f"{what}: enabled_by_default must be a bool")
        _check(isinstance(spec.options, list | tuple), f"{what}: options must be a list of OptionSpec")
        names: set[str] = set()
        flags: set[str] = set()
        for opt in spec.options:
            _check(isinstance(opt, OptionSpec), f"{what}: options contains {opt!r}, not an OptionSpec")
            _validate_option(what, opt)
            _check(opt.name not in names, f"{what}: option {opt.name!r} declared twice")
            names.add(opt.name)
            if opt.flag:
                _check(opt.flag not in flags and opt.flag != spec.enable_flag, f"{what}: flag {opt.flag} twice")
                flags.add(opt.flag)


def _validate_option(what: str, opt: OptionSpec) -> None:
    where = f"{what}: option {opt.name!r}"
    _check(
        isinstance(opt.name, str) and bool(_OPTION_NAME_RE.match(opt.name)) and opt.name != "enabled",
        f"{what}: option name {opt.name!r} is invalid (an identifier, not 'enabled')",
    )
    _check(
        opt.type in OPTION_TYPES,
        f"{where}: type {opt.type!r} is not one of bool, int, float, str, list",
    )
    _check(
        opt.flag is None or (isinstance(opt.flag, str) and bool(_FLAG_RE.match(opt.flag))),
        f"{where}: flag {opt.flag!r} is not a long flag like '--http-port'",
    )
    _check(isinstance(opt.help, str), f"{where}: help must be a string")
    if opt.choices is not None:
        _check(opt.type in (str, list), f"{where}: choices only apply to str or list options")
        _check(_is_str_seq(opt.choices), f"{where}: choices must be a list of strings")
    if opt.default is not None:
        _check(
            value_matches(opt.type, opt.default),
            f"{where}: default {opt.default!r} is not a {opt.type.__name__}",
        )


def value_matches(kind: type, value: object) -> bool:
    """True when ``value`` is a valid value of an option of type ``kind`` (bool is never an int)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is list:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return False
