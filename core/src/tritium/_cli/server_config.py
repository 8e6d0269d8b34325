"""The server config file (``tritium serve --config server.toml``) and the assembly of ServerOptions.

A file describes a whole server, in TOML or YAML (chosen by the extension)::

    [server]                      # kernel options: the kernel flags' names, '_' for '-'
    model_repository = ["models"]
    model_control_mode = "explicit"
    load_model = ["densenet"]

    [backend]                     # settings for every backend (--backend-config=<k>=<v>)
    default-max-batch-size = 8
    [backend.python]              # --backend-config=python,<k>=<v>
    shm-default-byte-size = 1048576

    [frontend.http]               # a frontend's options (OptionSpec.name) plus `enabled`
    port = 8000
    [metrics_sink.prometheus]
    enabled = false

Precedence, lowest first: built-in defaults, the file, command-line flags. A flag replaces the file's value
(a repeatable flag replaces the whole list); backend and component settings merge key by key. Relative
paths in ``[server]`` (``model_repository``, ``log_file``) are relative to the file's directory.

Every problem raises :class:`tritium.ConfigError` naming the file and the key path
(``server.toml: frontend.http.port: expected int, got str``).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from tritium._base.errors import ConfigError
from tritium._base.install import install_command
from tritium._base.options import ServerOptions
from tritium._plugins.flags import KERNEL_OPTIONS, PLUGIN_FAMILIES, KernelOption
from tritium._plugins.host import value_matches

if TYPE_CHECKING:
    from tritium._base.specs import FrontendSpec, MetricsSinkSpec, OptionSpec
    from tritium._plugins.host import PluginHost

__all__ = [
    "COMPONENT_KINDS",
    "FILE_OPTIONS",
    "ServerConfigFile",
    "assemble_server_options",
    "check_kernel_value",
    "check_option_value",
    "config_schema",
    "parse_backend_config",
    "read_server_config",
    "server_options_from_config",
]

COMPONENT_KINDS = ("frontend", "metrics_sink")
TOP_LEVEL_KEYS = ("server", "backend", *COMPONENT_KINDS)
FILE_OPTIONS: dict[str, KernelOption] = {opt.key: opt for opt in KERNEL_OPTIONS if opt.in_file}
_PATH_KEYS = ("model_repository", "log_file")
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list of str"}
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}


@attrs.define(frozen=True)
class ServerConfigFile:
    """A parsed config file: ``server`` holds the validated ``[server]`` values (only the keys present),
    ``backend`` the backend settings (``""``: every backend), ``components`` the raw ``[frontend.*]`` and
    ``[metrics_sink.*]`` tables, validated against the installed plugins by :meth:`components_for`."""

    path: str
    server: Mapping[str, Any] = attrs.field(factory=dict)
    backend: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    components: Mapping[str, Mapping[str, Mapping[str, Any]]] = attrs.field(factory=dict)

    def components_for(self, host: PluginHost) -> dict[str, dict[str, Any]]:
        """Validate the component tables against the installed plugins: ``"frontend.http" -> values``."""
        resolved: dict[str, dict[str, Any]] = {}
        for kind in COMPONENT_KINDS:
            specs: Mapping[str, FrontendSpec | MetricsSinkSpec] = (
                host.frontends if kind == "frontend" else host.metrics_sinks
            )
            for name, table in self.components.get(kind, {}).items():
                where = f"{kind}.{name}"
                spec = specs.get(name)
                if spec is None:
                    if table.get("enabled") is False:
                        continue  # switching off what is not there asks for nothing
                    raise ConfigError(f"{self.path}: {where}: {_missing_component(host, kind, name)}")
                resolved[where] = _check_component_table(self.path, where, spec, table)
        return resolved


# ------------------------------------------------------------------------------------------- values
def _type_name(value: object) -> str:
    return type(value).__name__


def check_option_value(where: str, kind: type, value: object, choices: Sequence[str] | None = None) -> Any:
    """Check a value against an option type; returns it normalized (float for float, list for list).

    Raises ConfigError ``<where>: expected int, got str``."""
    if not value_matches(kind, value):
        if kind is list and isinstance(value, list | tuple):
            bad = next(v for v in value if not isinstance(v, str))
            raise ConfigError(f"{where}: expected a list of strings, got an item of type {_type_name(bad)}")
        raise ConfigError(f"{where}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {_type_name(value)}")
    checked: Any = value
    if kind is float:
        checked = float(checked)
    if kind is list:
        checked = list(checked)
    if choices is not None:
        items = checked if kind is list else [checked]
        for item in items:
            if item not in choices:
                raise ConfigError(f"{where}: {item!r} is not one of {', '.join(repr(c) for c in choices)}")
    return checked


def check_kernel_value(where: str, opt: KernelOption, value: object) -> Any:
    """Check a kernel option's value (type, choices, bounds)."""
    checked = check_option_value(where, opt.type, value, opt.choices)
    if opt.minimum is not None and checked < opt.minimum:
        raise ConfigError(f"{where}: must be at least {opt.minimum:g}, got {checked}")
    if opt.maximum is not None and checked > opt.maximum:
        raise ConfigError(f"{where}: must be at most {opt.maximum:g}, got {checked}")
    return checked


def parse_backend_config(text: str) -> tuple[str, str, str]:
    """``"<backend>,<setting>=<value>"`` or ``"<setting>=<value>"`` (every backend) -> (backend, key, value).

    As in tritonserver, a comma before the first ``=`` separates the backend name."""
    equals = text.find("=")
    comma = text.find(",", 0, equals if equals >= 0 else len(text))
    backend = ""
    setting = text
    if comma == 0:
        raise ConfigError(
            f"--backend-config={text}: no backend specified; the format is "
            f"'<backend name>,<setting>=<value>' or '<setting>=<value>'"
        )
    if comma > 0:
        backend, setting = text[:comma], text[comma + 1 :]
    key, sep, value = setting.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"--backend-config={text}: the format is '<backend name>,<setting>=<value>' or '<setting>=<value>'"
        )
    return backend, key, value


def _backend_setting(where: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ConfigError(f"{where}: expected a string, number or bool, got {_type_name(value)}")


# --------------------------------------------------------------------------------------------- file
def _load_document(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: unknown config file type {suffix or '(none)'!r}; use .toml, .yaml or .yml")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not UTF-8: {exc}") from exc
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return {} if document is None else document


def _unknown_key(source: str, where: str, key: object, known: Iterable[str]) -> ConfigError:
    known = sorted(known)
    hint = difflib.get_close_matches(str(key), known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    prefix = f"{where}.{key}" if where else str(key)
    return ConfigError(f"{source}: {prefix}: unknown key{suggestion}; expected one of {', '.join(known)}")


def _table(source: str, where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {where}: expected a table, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{source}: {where}: keys must be strings, got {_type_name(key)} {key!r}")
    return value


def read_server_config(path: str | os.PathLike[str]) -> ServerConfigFile:
    """Read and check a config file as far as it can be checked without plugins: ``[server]`` and
    ``[backend]`` fully, the component tables' shape (their keys are checked by
    :meth:`ServerConfigFile.components_for`)."""
    file = Path(path)
    source = str(path)
    document = _table(source, "(top level)", _load_document(file))
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key(source, "", key, TOP_LEVEL_KEYS)
    base = file.parent

    server: dict[str, Any] = {}
    for key, value in _table(source, "server", document.get("server", {})).items():
        opt = FILE_OPTIONS.get(key)
        if opt is None:
            raise _unknown_key(source, "server", key, FILE_OPTIONS)
        try:
            checked = check_kernel_value(f"{source}: server.{key}", opt, value)
        except ConfigError:
            raise
        if key in _PATH_KEYS:
            checked = _relative_to(base, checked)
        server[key] = checked

    backend: dict[str, dict[str, str]] = {}
    for key, value in _table(source, "backend", document.get("backend", {})).items():
        if isinstance(value, Mapping):
            settings = backend.setdefault(key, {})
            for setting, item in _table(source, f"backend.{key}", value).items():
                settings[setting] = _backend_setting(f"{source}: backend.{key}.{setting}", item)
        else:
            backend.setdefault("", {})[key] = _backend_setting(f"{source}: backend.{key}", value)

    components: dict[str, dict[str, Mapping[str, Any]]] = {}
    for kind in COMPONENT_KINDS:
        tables = _table(source, kind, document.get(kind, {}))
        components[kind] = {name: _table(source, f"{kind}.{name}", t) for name, t in tables.items()}
    return ServerConfigFile(path=source, server=server, backend=backend, components=components)


def _relative_to(base: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [str(base / item) if item else item for item in value]
    return str(base / value) if value else value


def _check_component_table(
    source: str, where: str, spec: FrontendSpec | MetricsSinkSpec, table: Mapping[str, Any]
) -> dict[str, Any]:
    options = {opt.name: opt for opt in spec.options}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "enabled":
            values[key] = check_option_value(f"{source}: {where}.enabled", bool, value)
            continue
        opt = options.get(key)
        if opt is None:
            raise _unknown_key(source, where, key, ["enabled", *options])
        values[key] = check_option_value(f"{source}: {where}.{key}", opt.type, value, opt.choices)
    return values


def _missing_component(host: PluginHost, kind: str, name: str) -> str:
    words = kind.replace("_", " ")
    installed = sorted(host.frontends if kind == "frontend" else host.metrics_sinks)
    message = f"no {words} named {name!r} is installed (installed: {', '.join(installed) or 'none'})"
    for family in PLUGIN_FAMILIES:
        if family.kind == kind and family.name == name:
            blocked = {info.name for info in host.plugins() if info.blocked}
            if family.plugin in blocked:
                return f"{message}; its plugin {family.plugin!r} is disabled (--disable-plugin)"
            return f"{message}: {install_command(family.distribution)}"
    return message


# ----------------------------------------------------------------------------------------- assembly
def _installed_components(host: PluginHost) -> list[tuple[str, str, FrontendSpec | MetricsSinkSpec]]:
    """``(kind, name, spec)`` of every installed frontend and metrics sink, sorted by kind and name."""
    found: list[tuple[str, str, FrontendSpec | MetricsSinkSpec]] = []
    found += [("frontend", name, spec) for name, spec in sorted(host.frontends.items())]
    found += [("metrics_sink", name, spec) for name, spec in sorted(host.metrics_sinks.items())]
    return found


def component_defaults(spec: FrontendSpec | MetricsSinkSpec) -> dict[str, Any]:
    """A component's options as its plugin declares them, ``enabled`` included."""
    values: dict[str, Any] = {"enabled": spec.enabled_by_default}
    for opt in spec.options:
        values[opt.name] = list(opt.default) if isinstance(opt.default, list | tuple) else opt.default
    return values


def assemble_server_options(
    host: PluginHost,
    *,
    file: ServerConfigFile | None = None,
    server_values: Mapping[str, Any] | None = None,
    backend_config: Sequence[str] = (),
    component_values: Mapping[str, Mapping[str, Any]] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ServerOptions:
    """Merge defaults, a config file and explicit values (from flags) into :class:`tritium.ServerOptions`.

    ``server_values`` are kernel options by ``[server]`` key, already checked; ``backend_config`` are
    ``--backend-config`` strings; ``component_values`` maps ``"frontend.http"`` to options given on the
    command line. Every installed frontend and metrics sink gets a complete entry in
    ``ServerOptions.components`` (its defaults, then the file, then the flags).
    """
    values: dict[str, Any] = {opt.key: opt.default for opt in KERNEL_OPTIONS}
    if file is not None:
        values.update(file.server)
    values.update(server_values or {})

    backends: dict[str, dict[str, str]] = {}
    if file is not None:
        for name, settings in file.backend.items():
            backends[name] = dict(settings)
    for text in (*values.get("backend_config", ()), *backend_config):
        backend, key, value = parse_backend_config(text)
        backends.setdefault(backend, {})[key] = value

    components: dict[str, dict[str, Any]] = {}
    for kind, name, spec in _installed_components(host):
        components[f"{kind}.{name}"] = component_defaults(spec)
    if file is not None:
        for key, from_file in file.components_for(host).items():
            components[key].update(from_file)
    for key, from_flags in (component_values or {}).items():
        components.setdefault(key, {}).update(from_flags)

    mode = values["model_control_mode"]
    loads = tuple(values["load_model"])
    if loads and mode != "explicit":
        raise ConfigError("Use of '--load-model' requires setting '--model-control-mode=explicit' as well.")
    if "*" in loads and len(loads) > 1:
        raise ConfigError("Wildcard model name '*' must be the ONLY startup model if specified at all.")
    if values["strict_model_config"] and warn is not None:
        warn("--strict-model-config is deprecated; use --disable-auto-complete-config")

    return ServerOptions(
        model_repositories=tuple(values["model_repository"]),
        model_control_mode=mode,
        load_models=loads,
        repository_poll_secs=float(values["repository_poll_secs"]),
        model_config_name=values["model_config_name"],
        auto_complete_config=not (values["strict_model_config"] or values["disable_auto_complete_config"]),
        allow_soft_placement=values["allow_soft_placement"],
        exit_on_error=values["exit_on_error"],
        exit_timeout_secs=float(values["exit_timeout_secs"]),
        strict_readiness=values["strict_readiness"],
        server_id=values["id"],
        allow_client_shm=values["allow_client_shm"],
        model_load_thread_count=values["model_load_thread_count"],
        inline_execution_us=values["inline_execution_us"],
        workers=values["workers"],
        worker_poll_us=values["worker_poll_us"],
        log_verbose=values["log_verbose"],
        log_info=values["log_info"],
        log_warning=values["log_warning"],
        log_error=values["log_error"],
        log_format=values["log_format"],
        log_file=values["log_file"],
        backend_config=backends,
        disabled_plugins=tuple(values["disable_plugin"]),
        extra_plugins=tuple(values["plugin"]),
        components=components,
    )


def server_options_from_config(
    path: str | os.PathLike[str],
    *,
    host: PluginHost | None = None,
    warn: Callable[[str], None] | None = None,
) -> ServerOptions:
    """The ServerOptions a config file describes (the in-process equivalent of ``tritium serve --config``).

    Without ``host``, plugins are loaded (honouring the file's ``disable_plugin``)."""
    file = read_server_config(path)
    if host is None:
        from tritium._plugins.host import PluginHost, plugin_reference

        host = PluginHost(
            disabled=file.server.get("disable_plugin", ()),
            extra_plugins=[plugin_reference(m) for m in file.server.get("plugin", ())],
        )
        host.load()
    return assemble_server_options(host, file=file, warn=warn)


# ------------------------------------------------------------------------------------------- schema
def _option_schema(kind: type, default: Any, help_text: str, choices: Sequence[str] | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _JSON_TYPES[kind], "description": help_text}
    if kind is list:
        schema["items"] = {"type": "string"}
        if choices:
            schema["items"]["enum"] = list(choices)
    elif choices:
        schema["enum"] = list(choices)
    if default is not None:
        schema["default"] = list(default) if isinstance(default, list | tuple) else default
    return schema


def _component_schema(spec: FrontendSpec | MetricsSinkSpec, plugin: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "enabled": {
            "type": "boolean",
            "default": spec.enabled_by_default,
            "description": f"Run this component{f' ({spec.enable_flag})' if spec.enable_flag else ''}.",
        }
    }
    opt: OptionSpec
    for opt in spec.options:
        help_text = opt.help + (f" ({opt.flag})" if opt.flag else "")
        properties[opt.name] = _option_schema(opt.type, opt.default, help_text, opt.choices)
    return {
        "type": "object",
        "description": f"From plugin {plugin!r}.",
        "properties": properties,
        "additionalProperties": False,
    }


def config_schema(host: PluginHost) -> dict[str, Any]:
    """A JSON Schema (2020-12) of the server config file for the kernel and the installed plugins."""
    server = {
        opt.key: _option_schema(
            opt.type,
            opt.default,
            f"{opt.help} ({opt.flag})",
            opt.choices,
        )
        for opt in KERNEL_OPTIONS
        if opt.in_file
    }
    for key, opt in FILE_OPTIONS.items():
        if opt.minimum is not None:
            server[key]["minimum"] = opt.minimum
        if opt.maximum is not None:
            server[key]["maximum"] = opt.maximum
    scalar = {"type": ["string", "number", "boolean"]}
    sections: dict[str, Any] = {
        "server": {
            "type": "object",
            "description": "Kernel options: tritonserver's flags without the dashes, '_' for '-'.",
            "properties": server,
            "additionalProperties": False,
        },
        "backend": {
            "type": "object",
            "description": "Backend settings (--backend-config): a key here applies to every backend, "
            "a table [backend.<name>] to one backend.",
            "additionalProperties": {
                "anyOf": [scalar, {"type": "object", "additionalProperties": scalar}],
            },
        },
    }
    for kind in COMPONENT_KINDS:
        sections[kind] = {
            "type": "object",
            "description": f"Installed {kind.replace('_', ' ')}s and their options.",
            "properties": {
                name: _component_schema(spec, host.owner(kind, name).name)
                for spec_kind, name, spec in _installed_components(host)
                if spec_kind == kind
            },
            "additionalProperties": {
                "description": f"A {kind.replace('_', ' ')} that is not installed may only be switched off.",
                "type": "object",
                "properties": {"enabled": {"const": False}},
                "required": ["enabled"],
                "additionalProperties": False,
            },
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tritium server configuration",
        "type": "object",
        "properties": sections,
        "additionalProperties": False,
    }
