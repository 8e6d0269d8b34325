"""``tritium serve``'s command line: tritonserver's flags plus the installed plugins' flags.

Parsing takes two phases because plugins declare flags: first ``--config``, ``--disable-plugin`` and the
help/schema switches are picked out, the config file is read and the plugins are loaded; then the full
parser is built from the kernel's options (:mod:`tritium._plugins.flags`), every installed frontend's and metrics
sink's :class:`tritium.OptionSpec` and enable flag, and tritonserver's remaining flags (ignored with a
warning or refused). Flags override the config file.

Values take both ``--flag=value`` and ``--flag value``; booleans also take a bare ``--flag`` (true).
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import attrs

from tritium._base.errors import ConfigError
from tritium._base.install import install_command
from tritium._base.options import ServerOptions
from tritium._base.specs import FrontendSpec, MetricsSinkSpec, OptionSpec
from tritium._cli.server_config import (
    ServerConfigFile,
    _installed_components,
    assemble_server_options,
    check_kernel_value,
    check_option_value,
    config_schema,
    parse_backend_config,
    read_server_config,
)
from tritium._plugins.flags import (
    FOREIGN_BOOL_FALSE,
    KERNEL_OPTIONS,
    TRITON_ONLY_FLAGS,
    ForeignFlag,
    KernelOption,
    PluginFamily,
    family_of,
    parse_bool,
)
from tritium._plugins.host import PluginHost, plugin_reference

__all__ = ["ServeInvocation", "UsageError", "parse_serve_args"]

PROG = "tritium serve"
_KERNEL = "k:"
_COMPONENT = "c:"
_FOREIGN = "f:"


class UsageError(Exception):
    """A command-line mistake (unknown flag, bad value); ``tritium`` prints it and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"exit {status}")


@attrs.define(frozen=True)
class ServeInvocation:
    """What a ``tritium serve`` command line asks for.

    ``action`` is ``"serve"`` (``options`` are complete), ``"help"`` or ``"schema"`` (``output`` holds
    the text to print). ``warnings`` are to be logged once logging is configured."""

    action: str
    options: ServerOptions
    host: PluginHost
    warnings: tuple[str, ...] = ()
    output: str = ""


# ------------------------------------------------------------------------------------------- values
def _bool_type(text: str) -> bool:
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_type(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float_type(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_TYPES = {bool: _bool_type, int: _int_type, float: _float_type, str: str, list: str}


def _fmt_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "none" if not value else ", ".join(map(str, value))
    if value is None or value == "":
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flags: Sequence[str],
    dest: str,
    kind: type,
    help_text: str,
    *,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
) -> None:
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        kwargs.update(nargs="?", const=True, type=_bool_type, metavar="BOOL")
    elif kind is list:
        kwargs.update(action="append", type=str, metavar=metavar or "VALUE")
    else:
        kwargs.update(type=_TYPES[kind], metavar=metavar or ("|".join(choices) if choices else kind.__name__.upper()))
    parser.add_argument(*flags, **kwargs)


def _kernel_help(opt: KernelOption) -> str:
    extra = " Repeatable." if opt.type is list and "repeat" not in opt.help.lower() else ""
    return f"{opt.help}{extra} (default: {_fmt_default(opt.default)})".replace("%", "%%")


def _option_help(opt: OptionSpec) -> str:
    choices = f" One of: {', '.join(opt.choices)}." if opt.choices else ""
    key = f" Config file key: {opt.name}."
    return f"{opt.help}{choices}{key} (default: {_fmt_default(opt.default)})".replace("%", "%%")


# ------------------------------------------------------------------------------------------- parsers
def _pre_parser() -> _Parser:
    parser = _Parser(prog=PROG, add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true", dest="help")
    parser.add_argument("--print-config-schema", action="store_true", dest="schema")
    parser.add_argument("--config", dest="config")
    parser.add_argument("--disable-plugin", action="append", dest="disable")
    parser.add_argument("--plugin", action="append", dest="plugin")
    return parser


def _foreign_flags(host: PluginHost) -> list[ForeignFlag]:
    """tritonserver flags neither the kernel nor an installed plugin declares."""
    return [f for f in TRITON_ONLY_FLAGS if host.flag_owner(f.flag) is None]


def _components(host: PluginHost) -> list[tuple[str, str, FrontendSpec | MetricsSinkSpec]]:
    return _installed_components(host)


def build_serve_parser(host: PluginHost) -> _Parser:
    """The full ``tritium serve`` parser for the plugins ``host`` loaded."""
    parser = _Parser(
        prog=PROG,
        add_help=False,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="tritium serve --model-repository PATH [--config FILE] [FLAG ...]",
        description="Serve the models of one or more model repositories (tritonserver's flags).",
        epilog=_epilog(host),
    )
    general = parser.add_argument_group("general")
    general.add_argument("-h", "--help", action="store_true", dest="help", help="Show this help and exit.")
    general.add_argument(
        "--config",
        dest="config",
        metavar="FILE",
        help="Server config file (.toml, .yaml or .yml); flags override it. See docs/cli.md.",
    )
    general.add_argument(
        "--print-config-schema",
        action="store_true",
        dest="schema",
        help="Print the JSON Schema of the config file (kernel and installed plugins) and exit.",
    )
    kernel = parser.add_argument_group("server (kernel) options")
    for opt in KERNEL_OPTIONS:
        _add(
            kernel,
            opt.flags,
            _KERNEL + opt.key,
            opt.type,
            _kernel_help(opt),
            metavar=opt.metavar,
            choices=opt.choices,
        )
    for kind, name, spec in _components(host):
        info = host.owner(kind, name)
        source = f"{info.distribution} {info.version}" if info.distribution else "in-process"
        group = parser.add_argument_group(
            f"{kind.replace('_', ' ')} {name!r} (plugin {info.name}, {source}); config file [{kind}.{name}]"
        )
        if spec.enable_flag:
            _add(
                group,
                [spec.enable_flag],
                f"{_COMPONENT}{kind}.{name}:enabled",
                bool,
                f"Run this {kind.replace('_', ' ')}. Config file key: enabled. "
                f"(default: {_fmt_default(spec.enabled_by_default)})",
            )
        for option in spec.options:
            if option.flag:
                _add(
                    group,
                    [option.flag],
                    f"{_COMPONENT}{kind}.{name}:{option.name}",
                    option.type,
                    _option_help(option),
                    metavar=option.name.upper() if len(option.name) <= 12 else None,
                    choices=option.choices,
                )
    for foreign in _foreign_flags(host):
        kwargs: dict[str, Any] = {
            "dest": _FOREIGN + foreign.flag,
            "action": "append",
            "default": argparse.SUPPRESS,
            "help": argparse.SUPPRESS,
        }
        if foreign.boolean:
            kwargs.update(nargs="?", const="true")
        parser.add_argument(foreign.flag, **kwargs)
    return parser


def _epilog(host: PluginHost) -> str:
    foreign = _foreign_flags(host)
    ignored = [f.flag for f in foreign if f.policy == "warn" and family_of(f.flag) is None]
    refused = [f.flag for f in foreign if f.policy == "error" and family_of(f.flag) is None]
    lines = [
        "Booleans take true/false/on/off/1/0 (a bare flag means true); values take --flag=value or",
        "--flag value.",
        "",
        "tritonserver flags accepted and ignored with a warning:",
        *_wrap(ignored),
        "tritonserver flags refused (ignoring them would mislead; harmless values such as =false or",
        "=off are accepted):",
        *_wrap(refused),
    ]
    broken = [info for info in host.plugins() if info.error]
    if broken:
        lines += ["", "Plugins that failed to load (their flags are missing above):"]
        lines += [f"  {info.error}" for info in broken]
    blocked = [info.name for info in host.plugins() if info.blocked]
    if blocked:
        lines += ["", f"Disabled plugins: {', '.join(blocked)}"]
    lines += ["", "Config file format, precedence and every flag: docs/cli.md."]
    return "\n".join(lines)


def _wrap(items: Sequence[str], width: int = 96) -> list[str]:
    lines: list[str] = []
    line = " "
    for item in items:
        if len(line) + len(item) + 2 > width:
            lines.append(line.rstrip(","))
            line = " "
        line += f" {item},"
    if line.strip():
        lines.append(line.rstrip(","))
    return lines


# ------------------------------------------------------------------------------------------ checking
def _not_installed(family: PluginFamily, flag: str, host: PluginHost) -> UsageError:
    owner = f"the {family.kind_words} plugin {family.plugin!r}"
    states = {info.name: info for info in host.plugins()}
    info = states.get(family.plugin)
    if info is not None and info.blocked:
        return UsageError(f"flag {flag} belongs to {owner}, which is disabled (--disable-plugin {family.plugin})")
    if info is not None and info.error:
        return UsageError(f"flag {flag} belongs to {owner}, which failed to load: {info.error}")
    return UsageError(f"flag {flag} belongs to {owner}, which is not installed: {install_command(family.distribution)}")


def _plugin_loaded(host: PluginHost, plugin: str) -> bool:
    return any(info.name == plugin and not info.blocked and not info.error for info in host.plugins())


def _suggest(flag: str, known: Sequence[str]) -> str | None:
    """The flag the user probably meant: one it abbreviates, else the closest spelling."""
    extending = sorted(k for k in known if k.startswith(flag))
    if extending:
        return extending[0]
    close = difflib.get_close_matches(flag, known, n=1)
    return close[0] if close else None


def _check_extras(extras: Sequence[str], host: PluginHost, parser: _Parser) -> None:
    for token in extras:
        if token.startswith("-") and token not in ("-", "--"):
            flag = token.split("=", 1)[0]
            known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
            hint = _suggest(flag, known)
            suggestion = f" (did you mean {hint}?)" if hint else ""
            family = family_of(flag)
            if family is not None and not _plugin_loaded(host, family.plugin):
                raise _not_installed(family, flag, host)
            if family is not None:
                raise UsageError(
                    f"unknown flag {flag}{suggestion}: the {family.kind_words} plugin {family.plugin!r} "
                    f"does not declare it (see tritium serve --help)"
                )
            raise UsageError(f"unrecognized flag {flag}{suggestion}")
        raise UsageError(f"unexpected argument {token!r}: tritium serve takes only flags")


def _check_foreign(given: Mapping[str, list[str | None]], host: PluginHost) -> list[str]:
    by_flag = {f.flag: f for f in TRITON_ONLY_FLAGS}
    warnings: list[str] = []
    for flag, values in given.items():
        foreign = by_flag[flag]
        family = family_of(flag)
        for raw in values:
            value = (raw or "").strip().lower()
            if foreign.boolean:
                try:
                    value = "true" if parse_bool(value) else "false"
                except ValueError as exc:
                    raise UsageError(f"argument {flag}: {exc}") from None
            shown = f"{flag}={raw}" if raw is not None else flag
            if family is not None and not _plugin_loaded(host, family.plugin):
                if foreign.boolean and value in FOREIGN_BOOL_FALSE:
                    continue  # switching off what is not installed asks for nothing
                raise _not_installed(family, flag, host)
            if value in foreign.harmless:
                continue
            if foreign.policy == "error":
                raise UsageError(f"{shown} is not supported: {foreign.why}")
            warnings.append(f"{shown} is ignored: {foreign.why}")
    return warnings


def _kernel_values(namespace: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for opt in KERNEL_OPTIONS:
        dest = _KERNEL + opt.key
        if dest not in namespace:
            continue
        try:
            values[opt.key] = check_kernel_value(f"argument {opt.flag}", opt, namespace[dest])
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    for text in values.get("backend_config", ()):
        try:
            parse_backend_config(text)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    return values


def _component_values(namespace: Mapping[str, Any], host: PluginHost) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for kind, name, spec in _components(host):
        key = f"{kind}.{name}"
        enabled = f"{_COMPONENT}{key}:enabled"
        if enabled in namespace:
            values.setdefault(key, {})["enabled"] = namespace[enabled]
        for opt in spec.options:
            dest = f"{_COMPONENT}{key}:{opt.name}"
            if dest not in namespace:
                continue
            try:
                value = check_option_value(f"argument {opt.flag}", opt.type, namespace[dest], opt.choices)
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
            values.setdefault(key, {})[opt.name] = value
    return values


# ------------------------------------------------------------------------------------------ entry
def parse_serve_args(
    argv: Sequence[str],
    *,
    extra_plugins: Sequence[tuple[str, object]] = (),
    discover: bool = True,
) -> ServeInvocation:
    """Turn ``tritium serve``'s arguments into ServerOptions (or help / schema text).

    Raises :class:`UsageError` for command-line mistakes, :class:`tritium.ConfigError` for config file
    problems and :class:`tritium.PluginError` when a plugin cannot be loaded."""
    argv = list(argv)
    pre, _ = _pre_parser().parse_known_args(argv)
    informational = bool(pre.help or pre.schema)
    file: ServerConfigFile | None = read_server_config(pre.config) if pre.config else None
    disabled = pre.disable if pre.disable is not None else (file.server.get("disable_plugin", []) if file else [])
    modules = pre.plugin if pre.plugin is not None else (file.server.get("plugin", []) if file else [])
    extra = [*extra_plugins, *(plugin_reference(m) for m in modules)]
    host = PluginHost(disabled=disabled, extra_plugins=extra, discover=discover)
    host.load(strict=not informational)

    parser = build_serve_parser(host)
    if pre.help:
        return ServeInvocation("help", ServerOptions(), host, output=parser.format_help())
    if pre.schema:
        return ServeInvocation("schema", ServerOptions(), host, output=json.dumps(config_schema(host), indent=2))

    namespace, extras = parser.parse_known_args(argv)
    _check_extras(extras, host, parser)
    given = vars(namespace)
    warnings = _check_foreign(
        {k[len(_FOREIGN) :]: v for k, v in given.items() if k.startswith(_FOREIGN)},
        host,
    )
    warnings += [f"--disable-plugin {name}: no plugin of that name is installed" for name in host.unmatched_disabled()]
    kernel = _kernel_values(given)
    components = _component_values(given, host)
    options = assemble_server_options(
        host, file=file, server_values=kernel, component_values=components, warn=warnings.append
    )
    if not options.model_repositories:
        raise UsageError("--model-repository must be specified")
    return ServeInvocation("serve", options, host, warnings=tuple(warnings))
