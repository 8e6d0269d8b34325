"""The ``tritium`` command: ``serve``, ``plugins`` and ``repo check``.

Exit status: 0 on success (``serve``: a clean stop), 1 when the server, a plugin, a config file or a model
repository has a problem (the error is printed without a traceback), 2 for command-line mistakes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from tritium._base.errors import ConfigError, PluginError, TritiumError
from tritium._cli.serve_args import UsageError, _Parser, parse_serve_args
from tritium._cli.server_config import assemble_server_options, read_server_config
from tritium._plugins.host import PluginHost, PluginInfo

__all__ = ["main", "run"]

_log = logging.getLogger("tritium.cli")
_EXPECTED = (ConfigError, PluginError, TritiumError)

USAGE = """\
usage: tritium <command> [options]

commands:
  serve        serve model repositories (tritonserver's flags; tritium serve --help)
  plugins      list installed plugins, their components, and what is unavailable and why
  repo check   validate model repositories without serving them

Run 'tritium <command> --help' for a command's options. Reference: docs/cli.md.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: runs one command and returns its exit status."""
    return run(sys.argv[1:] if argv is None else argv)


def run(
    argv: Sequence[str],
    *,
    extra_plugins: Sequence[tuple[str, object]] = (),
    discover: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``tritium`` with ``argv`` (without the program name). ``extra_plugins`` and ``discover`` are
    passed to the plugin host (tests and embedders use them); output goes to ``stdout``/``stderr``."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        out.write(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from tritium._base.version import __version__
        from tritium._runtime.server import TRITON_COMPAT_VERSION

        out.write(f"tritium {__version__} (Triton {TRITON_COMPAT_VERSION} compatible)\n")
        return 0
    command, rest = args[0], args[1:]
    commands: dict[str, Callable[..., int]] = {"serve": _serve, "plugins": _plugins, "repo": _repo}
    handler = commands.get(command)
    if handler is None:
        err.write(f"tritium: error: unknown command {command!r}\n{USAGE}")
        return 2
    return handler(rest, extra_plugins=extra_plugins, discover=discover, out=out, err=err)


# -------------------------------------------------------------------------------------------- serve
def _serve(
    argv: Sequence[str],
    *,
    extra_plugins: Sequence[tuple[str, object]],
    discover: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        invocation = parse_serve_args(argv, extra_plugins=extra_plugins, discover=discover)
    except UsageError as exc:
        err.write(f"tritium serve: error: {exc}\nRun 'tritium serve --help' for the flags.\n")
        return 2
    except _EXPECTED as exc:
        err.write(f"tritium serve: error: {exc}\n")
        return 1
    if invocation.action != "serve":
        out.write(invocation.output.rstrip("\n") + "\n")
        return 0
    from tritium._cli.listening import check_listening

    listening = check_listening(invocation.host, invocation.options)
    if listening.refusal:
        err.write(f"tritium serve: error: {listening.refusal}\n")
        return 1

    from tritium._multiproc.supervisor import Supervisor, usable_cores
    from tritium._runtime.log_config import configure_logging
    from tritium._runtime.server import Server, StartupError

    try:
        configure_logging(invocation.options, stream=err)
    except OSError as exc:
        err.write(f"tritium serve: error: cannot open the log file: {exc}\n")
        return 1
    for warning in invocation.warnings:
        _log.warning("%s", warning)
    if listening.warning:
        _log.warning("%s", listening.warning)
    try:
        workers = invocation.options.workers or usable_cores()
        if workers > 1:
            result = asyncio.run(Supervisor(invocation.options, workers, invocation.host.frontends).serve())
        else:
            server = Server(invocation.options, host=invocation.host)
            result = asyncio.run(server.serve())
    except (*_EXPECTED, StartupError) as exc:
        _fail_startup(str(exc), err, invocation.options.log_file)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _log.exception("unexpected error")
        if invocation.options.log_file:
            err.write(f"tritium serve: unexpected error: {exc!r} (traceback in {invocation.options.log_file})\n")
        return 1
    return result if isinstance(result, int) else 0


def _fail_startup(message: str, err: TextIO, log_file: str) -> None:
    """A startup failure always reaches stderr, and the log file when there is one."""
    if log_file:
        _log.error("%s", message)
    err.write(f"tritium serve: error: {message}\n")


# ------------------------------------------------------------------------------------------ plugins
def _plugins_parser() -> _Parser:
    parser = _Parser(
        prog="tritium plugins",
        allow_abbrev=False,
        description="List every plugin found (entry points of group tritium.plugins), its distribution, "
        "version and components, and what is unavailable and why. Never fails on a broken plugin.",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument(
        "--disable-plugin", action="append", default=[], metavar="NAME", help="Block a plugin (repeatable)."
    )
    return parser


def plugins_report(host: PluginHost) -> dict[str, Any]:
    """``tritium plugins --json``'s document."""
    plugins = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "components": list(info.components),
            "blocked": info.blocked,
            "error": info.error,
        }
        for info in host.plugins()
    ]
    return {"plugins": plugins, "unavailable_backends": host.unavailable_backends()}


def _status(info: PluginInfo) -> str:
    if info.blocked:
        return "disabled"
    if info.error:
        return "error"
    return "ok"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def format_plugins(report: dict[str, Any]) -> str:
    """``tritium plugins``' readable table."""
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS")]
    for plugin in report["plugins"]:
        info = PluginInfo(**{**plugin, "components": tuple(plugin["components"])})
        rows.append(
            (
                info.name,
                info.distribution or "(in-process)",
                info.version or "-",
                _status(info),
                ", ".join(info.components) or "-",
            )
        )
    lines = [_table(rows)] if report["plugins"] else ["No plugins found (entry-point group tritium.plugins)."]
    problems = [p for p in report["plugins"] if p["error"]]
    if problems:
        lines += ["", "Plugins that failed to load:"]
        lines += [f"  {p['name']}: {p['error']}" for p in problems]
    blocked = [p["name"] for p in report["plugins"] if p["blocked"]]
    if blocked:
        lines += ["", f"Disabled (--disable-plugin): {', '.join(blocked)}"]
    unavailable = report["unavailable_backends"]
    if unavailable:
        lines += ["", "Unavailable backends:"]
        lines += [f"  {name}: {reason}" for name, reason in sorted(unavailable.items())]
    return "\n".join(lines) + "\n"


def _plugins(
    argv: Sequence[str],
    *,
    extra_plugins: Sequence[tuple[str, object]],
    discover: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        args = _plugins_parser().parse_args(argv)
    except UsageError as exc:
        return _usage(err, "plugins", exc)
    host = PluginHost(disabled=args.disable_plugin, extra_plugins=extra_plugins, discover=discover)
    try:
        host.load(strict=False)
    except Exception as exc:  # pragma: no cover - load(strict=False) records every plugin problem
        err.write(f"tritium plugins: error: {type(exc).__name__}: {exc}\n")
        return 1
    report = plugins_report(host)
    out.write(json.dumps(report, indent=2) + "\n" if args.json else format_plugins(report))
    return 0


def _usage(err: TextIO, command: str, exc: UsageError) -> int:
    """Exit status for an argparse exit: 0 after --help, else 2 with the message."""
    text = str(exc)
    if text.startswith("exit 0"):
        return 0
    err.write(f"tritium {command}: error: {text}\n")
    return 2


# --------------------------------------------------------------------------------------- repo check
def _repo_parser() -> _Parser:
    parser = _Parser(
        prog="tritium repo",
        allow_abbrev=False,
        description="Model repository tools.",
    )
    sub = parser.add_subparsers(dest="action", metavar="check", parser_class=_Parser)
    check = sub.add_parser(
        "check",
        help="validate model repositories without serving them",
        description="Validate model repositories without serving: every model's configuration is parsed, "
        "its backend resolved, auto-completed by the backend and normalized, and everything serve checks "
        "before loading is checked (version folders and model files, backend availability, schedulers). "
        "Exits 1 when any model has a problem.",
        allow_abbrev=False,
    )
    check.add_argument("repositories", nargs="+", metavar="DIR", help="model repository directories")
    check.add_argument("--show-config", action="store_true", help="print each model's completed config (JSON)")
    check.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    check.add_argument("--config", metavar="FILE", help="server config file (backend settings, plugins)")
    check.add_argument("--model-config-name", metavar="NAME", help="as for tritium serve")
    check.add_argument(
        "--disable-auto-complete-config",
        nargs="?",
        const="true",
        metavar="BOOL",
        help="check configs as written, without auto-completion",
    )
    check.add_argument(
        "--backend-config", action="append", default=None, metavar="[BACKEND,]KEY=VALUE", help="as for serve"
    )
    check.add_argument("--disable-plugin", action="append", default=None, metavar="NAME", help="as for serve")
    return parser


def _repo(
    argv: Sequence[str],
    *,
    extra_plugins: Sequence[tuple[str, object]],
    discover: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    parser = _repo_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage(err, "repo", exc)
    if args.action != "check":
        err.write("tritium repo: error: expected a subcommand: tritium repo check DIR [DIR...]\n")
        return 2
    try:
        return _repo_check(args, extra_plugins=extra_plugins, discover=discover, out=out, err=err)
    except UsageError as exc:
        err.write(f"tritium repo check: error: {exc}\n")
        return 2
    except _EXPECTED as exc:
        err.write(f"tritium repo check: error: {exc}\n")
        return 1


def _repo_check(
    args: argparse.Namespace,
    *,
    extra_plugins: Sequence[tuple[str, object]],
    discover: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    from tritium._base.devices import visible_gpu_count
    from tritium._plugins.flags import parse_bool
    from tritium._runtime.repository import backend_options_for, prepare_model, scan_repositories
    from tritium._runtime.servable import check_servable
    from tritium.abc import Backend
    from tritium.config import model_config_to_json

    file = read_server_config(args.config) if args.config else None
    disabled = args.disable_plugin
    if disabled is None:
        disabled = list(file.server.get("disable_plugin", [])) if file else []
    host = PluginHost(disabled=disabled, extra_plugins=extra_plugins, discover=discover)
    host.load(strict=False)
    for info in host.plugins():
        if info.error:
            err.write(f"warning: {info.error}\n")
    values: dict[str, Any] = {"model_repository": list(args.repositories), "disable_plugin": disabled}
    if args.model_config_name is not None:
        values["model_config_name"] = args.model_config_name
    if args.disable_auto_complete_config is not None:
        try:
            values["disable_auto_complete_config"] = parse_bool(args.disable_auto_complete_config)
        except ValueError as exc:
            raise UsageError(f"argument --disable-auto-complete-config: {exc}") from None
    if args.backend_config:
        values["backend_config"] = list(args.backend_config)
    options = assemble_server_options(host, file=file, server_values=values)

    backends: dict[str, Backend] = {}
    unavailable = host.unavailable_backends()

    def backend_for(name: str) -> Backend:
        backend = backends.get(name)
        if backend is None:
            spec = host.backends.get(name)
            if spec is None:
                raise TritiumError.unavailable(f"backend '{name}' is not installed")
            if name in unavailable:
                raise TritiumError.unavailable(f"backend '{name}' is unavailable: {unavailable[name]}")
            backend = spec.factory(backend_options_for(options, name))
            reason = backend.availability()
            if reason:
                raise TritiumError.unavailable(f"backend '{name}' is unavailable: {reason}")
            backends[name] = backend
        return backend

    scan = scan_repositories(options.model_repositories)
    gpu_count = visible_gpu_count()
    results: list[dict[str, Any]] = []
    for name, paths in sorted(scan.duplicates.items()):
        where = ", ".join(str(p) for p in paths)
        results.append({"name": name, "ok": False, "error": f"model '{name}' appears in several repositories: {where}"})
    for name, directory in sorted(scan.models.items()):
        entry: dict[str, Any] = {"name": name, "path": str(directory.path)}
        try:
            # Exactly what loading checks before creating instances (tritium._runtime.servable).
            prepared = prepare_model(directory, host, options, backend_for=backend_for, gpu_count=gpu_count)
            check_servable(prepared, host, backend_for)
        except _EXPECTED as exc:
            entry.update(ok=False, error=str(exc))
        except Exception as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            entry.update(
                ok=True,
                backend=prepared.backend_name,
                versions=list(prepared.versions),
                config=model_config_to_json(prepared.config),
            )
        results.append(entry)
    failed = sum(1 for r in results if not r["ok"])
    if args.json:
        out.write(json.dumps({"models": results, "failed": failed}, indent=2) + "\n")
    else:
        out.write(_format_check(results, show_config=args.show_config))
    return 1 if failed else 0


def _format_check(results: Sequence[dict[str, Any]], *, show_config: bool) -> str:
    if not results:
        return "no models found\n"
    lines: list[str] = []
    for result in sorted(results, key=lambda r: r["name"]):
        if result["ok"]:
            versions = ", ".join(str(v) for v in result["versions"]) or "none"
            lines.append(f"{result['name']}: OK (backend {result['backend']}, versions {versions})")
            if show_config:
                lines.append(json.dumps(result["config"], indent=2))
        else:
            lines.append(f"{result['name']}: ERROR: {result['error']}")
    failed = sum(1 for r in results if not r["ok"])
    lines.append(f"{len(results)} model(s) checked, {failed} with problems")
    return "\n".join(lines) + "\n"
