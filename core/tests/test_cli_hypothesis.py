"""Property tests: whatever the command line or config file, parsing ends in options or a clean error."""

from __future__ import annotations

import tempfile
import types
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tritium
from tritium import ConfigError, FrontendSpec, OptionSpec, PluginError, ServerOptions
from tritium._cli.serve_args import UsageError, parse_serve_args
from tritium._cli.server_config import FILE_OPTIONS, assemble_server_options, read_server_config
from tritium._plugins.flags import KERNEL_OPTIONS, TRITON_ONLY_FLAGS
from tritium._plugins.host import PluginHost


def _factory(*args: Any) -> None:
    return None


HTTP = FrontendSpec(
    name="http",
    factory=_factory,
    enable_flag="--allow-http",
    options=[
        OptionSpec("port", int, 8000, "port", flag="--http-port"),
        OptionSpec("ratio", float, 0.5, "ratio", flag="--http-ratio"),
        OptionSpec("apis", list, [], "apis", flag="--http-restricted-api"),
        OptionSpec("mode", str, "a", "mode", flag="--http-mode", choices=["a", "b"]),
    ],
)
MODULE = types.ModuleType("http")
MODULE.tritium_register_frontends = tritium.hookimpl(lambda: [HTTP])  # type: ignore[attr-defined]
PLUGINS = [("builtin", "tritium._runtime.builtin"), ("frontend_http", MODULE)]

FLAGS = sorted(
    {flag for opt in KERNEL_OPTIONS for flag in opt.flags}
    | {f.flag for f in TRITON_ONLY_FLAGS}
    | {
        "--http-port",
        "--http-ratio",
        "--http-restricted-api",
        "--http-mode",
        "--allow-http",
        "--config",
        "--grpc-port",
        "--metrics-port",
        "--http-unknown",
        "--nope",
        "-x",
        "-",
        "--",
    }
)
VALUES = st.one_of(
    st.sampled_from(
        [
            "true",
            "false",
            "0",
            "1",
            "on",
            "OFF",
            "none",
            "poll",
            "explicit",
            "*",
            "-1",
            "1e9",
            "nan",
            "a,b=c",
            "=x",
            ",k=v",
            "k=v",
            "ISO8601",
            "a",
            "b",
            "",
        ]
    ),
    st.integers(-5, 10**6).map(str),
    st.text(max_size=12),
)
TOKEN = st.one_of(
    st.tuples(st.sampled_from(FLAGS), VALUES).map(lambda fv: f"{fv[0]}={fv[1]}"),
    st.sampled_from(FLAGS),
    VALUES,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKEN, max_size=12))
def test_any_command_line_parses_or_fails_cleanly(argv: list[str]) -> None:
    argv = [a for a in argv if not a.startswith("--config")]  # no file system access from this test
    try:
        invocation = parse_serve_args(["--model-repository", "/m", *argv], extra_plugins=PLUGINS, discover=False)
    except (UsageError, ConfigError) as exc:
        assert str(exc)
        return
    except PluginError as exc:  # a --plugin naming a module that cannot be imported
        assert any(a.startswith("--plugin") for a in argv) and "plugin" in str(exc)
        return
    assert invocation.action in ("serve", "help", "schema")
    assert isinstance(invocation.options, ServerOptions)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**4), st.floats(allow_nan=False), st.text(max_size=8))
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
SERVER_SECTION = st.dictionaries(
    st.one_of(st.sampled_from(sorted(FILE_OPTIONS)), st.text(max_size=6)), JSONISH, max_size=4
)
COMPONENT = st.dictionaries(st.sampled_from(["enabled", "port", "ratio", "apis", "mode", "other"]), JSONISH, max_size=3)
DOCUMENT = st.dictionaries(
    st.sampled_from(["server", "backend", "frontend", "metrics_sink", "extra"]),
    st.one_of(
        SERVER_SECTION,
        st.dictionaries(st.sampled_from(["http", "grpc", "prometheus"]), st.one_of(COMPONENT, JSONISH), max_size=2),
        JSONISH,
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT)
def test_any_config_document_loads_or_fails_cleanly(document: dict[str, Any]) -> None:
    host = PluginHost(extra_plugins=PLUGINS, discover=False)
    host.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "server.yaml"
        path.write_text(yaml.safe_dump(document))
        try:
            options = assemble_server_options(host, file=read_server_config(path))
        except ConfigError as exc:
            assert str(exc).startswith(str(path))
            return
    assert isinstance(options, ServerOptions)
    assert isinstance(options.components["frontend.http"]["port"], int)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_any_toml_text_loads_or_fails_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "server.toml"
        path.write_bytes(text.encode("utf-8", "replace"))
        try:
            read_server_config(path)
        except ConfigError:
            pass
