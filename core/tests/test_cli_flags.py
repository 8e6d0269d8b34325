"""``tritium serve``'s flags: every tritonserver flag, plugin flags, refused and ignored flags."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

import tritium
from tritium import ConfigError, FrontendSpec, MetricsSinkSpec, OptionSpec, PluginError, ServerOptions, install_command
from tritium._cli.serve_args import ServeInvocation, UsageError, parse_serve_args
from tritium._plugins.flags import KERNEL_OPTIONS, TRITON_ONLY_FLAGS


def _factory(*args: Any) -> None:
    return None


HTTP = FrontendSpec(
    name="http",
    factory=_factory,
    enable_flag="--allow-http",
    options=[
        OptionSpec("port", int, 8000, "HTTP port", flag="--http-port"),
        OptionSpec("address", str, "0.0.0.0", "bind address", flag="--http-address"),
        OptionSpec("restricted_api", list, [], "restricted APIs", flag="--http-restricted-api"),
        OptionSpec("compression", str, "none", "compression", flag="--http-compression", choices=["none", "gzip"]),
        OptionSpec("ratio", float, 0.5, "a ratio", flag="--http-ratio"),
        OptionSpec("reuse_port", bool, False, "SO_REUSEPORT", flag="--reuse-http-port"),
        OptionSpec("secret", str, "", "file-only option"),
    ],
)
SINK = MetricsSinkSpec(name="stats", factory=_factory, enabled_by_default=False, enable_flag="--allow-stats")


def _module(name: str, hook: str, specs: list[Any]) -> types.ModuleType:
    module = types.ModuleType(name)
    setattr(module, hook, tritium.hookimpl(lambda: specs))
    return module


PLUGINS = [
    ("builtin", "tritium._runtime.builtin"),
    ("frontend_http", _module("http", "tritium_register_frontends", [HTTP])),
    ("metrics_stats", _module("stats", "tritium_register_metrics_sinks", [SINK])),
]
REPO = ["--model-repository", "/models"]


def parse(*argv: str, plugins: list[tuple[str, object]] | None = None) -> ServeInvocation:
    return parse_serve_args(list(argv), extra_plugins=PLUGINS if plugins is None else plugins, discover=False)


def options(*argv: str) -> ServerOptions:
    invocation = parse(*REPO, *argv)
    assert invocation.action == "serve"
    return invocation.options


# --------------------------------------------------------------------------------------- defaults
def test_defaults_match_server_options() -> None:
    parsed = options()
    default = ServerOptions()
    for field in (
        "model_control_mode",
        "repository_poll_secs",
        "auto_complete_config",
        "allow_soft_placement",
        "exit_on_error",
        "exit_timeout_secs",
        "strict_readiness",
        "server_id",
        "allow_client_shm",
        "model_load_thread_count",
        "inline_execution_us",
        "workers",
        "log_verbose",
        "log_info",
        "log_warning",
        "log_error",
        "log_format",
        "log_file",
        "model_config_name",
    ):
        assert getattr(parsed, field) == getattr(default, field), field
    assert parsed.model_repositories == ("/models",)
    assert parsed.components == {
        "frontend.http": {
            "enabled": True,
            "port": 8000,
            "address": "0.0.0.0",
            "restricted_api": [],
            "compression": "none",
            "ratio": 0.5,
            "reuse_port": False,
            "secret": "",
        },
        "metrics_sink.stats": {"enabled": False},
    }
    assert parsed.backend_config == {} and parsed.disabled_plugins == () and parsed.load_models == ()


# ------------------------------------------------------------------------------------- kernel flags
@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["--model-store", "/b"], "model_repositories", ("/models", "/b")),
        (["--model-repository=/b", "--model-repository", "/c"], "model_repositories", ("/models", "/b", "/c")),
        (["--model-control-mode", "poll"], "model_control_mode", "poll"),
        (["--model-control-mode=explicit", "--load-model", "a", "--load-model=b"], "load_models", ("a", "b")),
        (["--model-control-mode=explicit", "--load-model=*"], "load_models", ("*",)),
        (["--repository-poll-secs", "5"], "repository_poll_secs", 5.0),
        (["--repository-poll-secs=0.5"], "repository_poll_secs", 0.5),
        (["--model-config-name", "h100"], "model_config_name", "h100"),
        (["--strict-model-config"], "auto_complete_config", False),
        (["--strict-model-config=true"], "auto_complete_config", False),
        (["--strict-model-config=false"], "auto_complete_config", True),
        (["--disable-auto-complete-config"], "auto_complete_config", False),
        (["--disable-auto-complete-config=false"], "auto_complete_config", True),
        (["--allow-soft-placement=false"], "allow_soft_placement", False),
        (["--exit-on-error", "false"], "exit_on_error", False),
        (["--exit-on-error=OFF"], "exit_on_error", False),
        (["--exit-timeout-secs", "3"], "exit_timeout_secs", 3.0),
        (["--strict-readiness=0"], "strict_readiness", False),
        (["--strict-readiness", "on"], "strict_readiness", True),
        (["--allow-client-shm"], "allow_client_shm", True),
        (["--allow-client-shm=1"], "allow_client_shm", True),
        (["--model-load-thread-count", "2"], "model_load_thread_count", 2),
        (["--inline-execution-us=0"], "inline_execution_us", 0),
        (["--workers", "4"], "workers", 4),
        (["--workers=1"], "workers", 1),
        (["--log-verbose", "2"], "log_verbose", 2),
        (["--log-verbose=1"], "log_verbose", 1),
        (["--log-info", "false"], "log_info", False),
        (["--log-warning=false"], "log_warning", False),
        (["--log-error=0"], "log_error", False),
        (["--log-format", "ISO8601"], "log_format", "ISO8601"),
        (["--log-file", "/tmp/x.log"], "log_file", "/tmp/x.log"),
        (["--worker-poll-us", "200"], "worker_poll_us", 200),
        (["--id", "my-server"], "server_id", "my-server"),
        (["--disable-plugin", "metrics_stats"], "disabled_plugins", ("metrics_stats",)),
        (["--plugin", "tritium.testing.fakes"], "extra_plugins", ("tritium.testing.fakes",)),
        (
            [
                "--backend-config",
                "onnxruntime,intra-op=2",
                "--backend-config=default-max-batch-size=4",
                "--backend-config=python,shm=a=b",
                "--backend-config=onnxruntime,intra-op=3",
            ],
            "backend_config",
            {"onnxruntime": {"intra-op": "3"}, "": {"default-max-batch-size": "4"}, "python": {"shm": "a=b"}},
        ),
    ],
)
def test_kernel_flag(argv: list[str], field: str, expected: Any) -> None:
    assert getattr(options(*argv), field) == expected


def test_every_kernel_flag_is_covered_by_a_test() -> None:
    tested = {arg.split("=")[0] for case in test_kernel_flag.pytestmark[0].args[1] for arg in case[0]}  # type: ignore[attr-defined]
    flags = {flag for opt in KERNEL_OPTIONS for flag in opt.flags}
    assert flags - tested == {"--model-repository"} - tested


def test_plugin_flag_loads_a_module_plugin() -> None:
    invocation = parse(*REPO, "--plugin", "tritium.testing.fakes:fake_plugin")
    assert "identity" in invocation.host.backends
    assert invocation.host.owner("backend", "identity").name == "fake_plugin"


def test_strict_model_config_warns() -> None:
    invocation = parse(*REPO, "--strict-model-config=true")
    assert any("--strict-model-config is deprecated" in w for w in invocation.warnings)


def test_disable_plugin_blocks_and_unknown_name_warns() -> None:
    invocation = parse(*REPO, "--disable-plugin", "metrics_stats", "--disable-plugin=nosuch")
    assert "metrics_sink.stats" not in invocation.options.components
    assert [i.name for i in invocation.host.plugins() if i.blocked] == ["metrics_stats"]
    assert any("--disable-plugin nosuch: no plugin" in w for w in invocation.warnings)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model-control-mode", "lazy"],
            "argument --model-control-mode: 'lazy' is not one of 'none', 'poll', 'explicit'",
        ),
        (["--log-verbose", "-1"], "argument --log-verbose: must be at least 0, got -1"),
        (["--log-verbose", "x"], "argument --log-verbose: expected an integer, got 'x'"),
        (["--model-load-thread-count=0"], "argument --model-load-thread-count: must be at least 1, got 0"),
        (["--worker-poll-us=100001"], "argument --worker-poll-us: must be at most 100000, got 100001"),
        (["--exit-timeout-secs=nan"], "expected a finite number"),
        (["--strict-readiness=maybe"], "argument --strict-readiness: invalid value for bool option: maybe"),
        (["--log-format", "json"], "'json' is not one of 'default', 'ISO8601'"),
        (["--backend-config", ",k=v"], "no backend specified"),
        (["--backend-config", "onnxruntime"], "the format is '<backend name>,<setting>=<value>'"),
        (["--backend-config", "python,=v"], "the format is"),
        (["--model-repository"], "expected one argument"),
        (["--model-repo=/x"], "unrecognized flag --model-repo (did you mean --model-repository?)"),
        (["--no-such-flag"], "unrecognized flag --no-such-flag"),
        (["positional"], "unexpected argument 'positional'"),
        (["--http-port", "80x"], "argument --http-port: expected an integer, got '80x'"),
        (["--http-compression=brotli"], "argument --http-compression: 'brotli' is not one of 'none', 'gzip'"),
        (["--http-bogus=1"], "the frontend plugin 'frontend_http' does not declare it"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(*REPO, *argv)
    assert message in str(caught.value)


def test_model_repository_is_required() -> None:
    with pytest.raises(UsageError, match="--model-repository must be specified"):
        parse()


def test_load_model_needs_explicit_mode() -> None:
    with pytest.raises(ConfigError, match=r"Use of '--load-model' requires setting '--model-control-mode=explicit'"):
        parse(*REPO, "--load-model", "a")
    with pytest.raises(ConfigError, match=r"Wildcard model name '\*' must be the ONLY startup model"):
        parse(*REPO, "--model-control-mode=explicit", "--load-model=*", "--load-model=a")


# ------------------------------------------------------------------------------------- plugin flags
def test_plugin_flags_fill_components() -> None:
    parsed = options(
        "--http-port",
        "1234",
        "--http-address=127.0.0.1",
        "--http-restricted-api=a:k=v",
        "--http-restricted-api",
        "b:k=v",
        "--http-compression",
        "gzip",
        "--http-ratio=2",
        "--reuse-http-port",
        "--allow-stats",
    )
    assert parsed.components["frontend.http"] == {
        "enabled": True,
        "port": 1234,
        "address": "127.0.0.1",
        "restricted_api": ["a:k=v", "b:k=v"],
        "compression": "gzip",
        "ratio": 2.0,
        "reuse_port": True,
        "secret": "",
    }
    assert parsed.components["metrics_sink.stats"] == {"enabled": True}


def test_enable_flag_switches_off() -> None:
    assert options("--allow-http=false").components["frontend.http"]["enabled"] is False
    assert options("--allow-http", "0").components["frontend.http"]["enabled"] is False


@pytest.mark.parametrize(
    ("flag", "plugin", "dist", "kind"),
    [
        ("--grpc-port", "frontend_grpc", "tritium-frontend-grpc", "frontend"),
        ("--grpc-use-ssl", "frontend_grpc", "tritium-frontend-grpc", "frontend"),
        ("--grpc-anything-new", "frontend_grpc", "tritium-frontend-grpc", "frontend"),
        ("--allow-grpc", "frontend_grpc", "tritium-frontend-grpc", "frontend"),
        ("--metrics-port", "metrics_prometheus", "tritium-metrics-prometheus", "metrics sink"),
        ("--allow-metrics", "metrics_prometheus", "tritium-metrics-prometheus", "metrics sink"),
        ("--allow-gpu-metrics", "metrics_prometheus", "tritium-metrics-prometheus", "metrics sink"),
    ],
)
def test_flag_of_a_plugin_not_installed(flag: str, plugin: str, dist: str, kind: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(*REPO, f"{flag}=1")
    assert str(caught.value) == (
        f"flag {flag} belongs to the {kind} plugin {plugin!r}, which is not installed: {install_command(dist)}"
    )


def test_http_port_message_when_http_plugin_missing() -> None:
    with pytest.raises(UsageError) as caught:
        parse(*REPO, "--http-port", "8000", plugins=PLUGINS[:1])
    assert str(caught.value) == (
        "flag --http-port belongs to the frontend plugin 'frontend_http', which is not installed: "
        + install_command("tritium-frontend-http")
    )


def test_flag_of_a_disabled_plugin() -> None:
    with pytest.raises(UsageError) as caught:
        parse(*REPO, "--disable-plugin", "frontend_http", "--http-port=1")
    assert str(caught.value) == (
        "flag --http-port belongs to the frontend plugin 'frontend_http', which is disabled "
        "(--disable-plugin frontend_http)"
    )


@pytest.mark.parametrize("argv", [["--allow-grpc=false"], ["--allow-metrics", "off"], ["--grpc-use-ssl=false"]])
def test_switching_off_what_is_not_installed_is_fine(argv: list[str]) -> None:
    invocation = parse(*REPO, *argv)
    assert invocation.warnings == ()


def test_plugin_failing_to_load_stops_serve() -> None:
    with pytest.raises(PluginError, match="plugin 'ghost'"):
        parse(*REPO, plugins=[*PLUGINS, ("ghost", "tritium_no_such_module_xyz")])


# ---------------------------------------------------------------------------- tritonserver-only flags
@pytest.mark.parametrize(
    "argv",
    [
        ["--backend-directory", "/opt/tritonserver/backends"],
        ["--repoagent-directory=/x"],
        ["--pinned-memory-pool-byte-size=1024"],
        ["--cuda-memory-pool-byte-size", "0:1024"],
        ["--cuda-virtual-address-size=0:1024"],
        ["--min-supported-compute-capability=6.0"],
        ["--buffer-manager-thread-count=2"],
        ["--host-policy=gpu0,numa-node=0"],
        ["--model-load-gpu-limit", "0:0.5"],
        ["--enable-peer-access"],
        ["--model-load-retry-count=2"],
        ["--cache-config", "local,size=1048576"],
        ["--cache-directory=/c"],
        ["--response-cache-byte-size=1"],
        ["--trace-config", "level=TIMESTAMPS"],
        ["--trace-file=/t"],
        ["--trace-level=TIMESTAMPS"],
        ["--trace-rate=10"],
        ["--trace-count=1"],
        ["--trace-log-frequency=1"],
        ["--sagemaker-port=8080"],
        ["--vertex-ai-port=8080"],
        ["--http-thread-count=4"],
        ["--http-header-forward-pattern", "x-.*"],
    ],
)
def test_ignored_flags_warn(argv: list[str]) -> None:
    invocation = parse(*REPO, *argv)
    assert len(invocation.warnings) == 1
    assert invocation.warnings[0].startswith(argv[0].split("=")[0]) and "is ignored:" in invocation.warnings[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--model-load-retry-count=0"],
        ["--trace-level=OFF"],
        ["--rate-limit", "off"],
        ["--model-namespacing=false"],
        ["--allow-sagemaker=false"],
        ["--allow-vertex-ai", "false"],
        ["--allow-cpu-metrics=false"],
    ],
)
def test_harmless_values_are_silent(argv: list[str]) -> None:
    assert parse(*REPO, *argv).warnings == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate-limit", "execution_count"], "--rate-limit=execution_count is not supported: the rate limiter"),
        (["--rate-limit-resource=R1:4"], "--rate-limit-resource=R1:4 is not supported"),
        (["--model-namespacing"], "--model-namespacing=true is not supported: model namespacing"),
        (["--allow-sagemaker=true"], "--allow-sagemaker=true is not supported: there is no SageMaker frontend"),
        (["--allow-vertex-ai"], "--allow-vertex-ai=true is not supported"),
        (["--enable-peer-access=sometimes"], "invalid value for bool option: sometimes"),
    ],
)
def test_refused_flags(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(*REPO, *argv)
    assert message in str(caught.value)


def test_every_triton_only_flag_is_accepted_or_refused_cleanly() -> None:
    for foreign in TRITON_ONLY_FLAGS:
        argv = [*REPO, f"{foreign.flag}=true" if foreign.boolean else f"{foreign.flag}=1"]
        try:
            parse_serve_args(argv, extra_plugins=PLUGINS, discover=False)
        except UsageError as exc:
            assert foreign.flag in str(exc)


# ------------------------------------------------------------------------------------ help, schema
def test_help_lists_every_kernel_and_plugin_flag_with_defaults() -> None:
    invocation = parse("--help")
    assert invocation.action == "help"
    text = " ".join(invocation.output.split())
    for opt in KERNEL_OPTIONS:
        for flag in opt.flags:
            assert flag in text
    for flag in (
        "--http-port",
        "--http-address",
        "--allow-http",
        "--allow-stats",
        "--reuse-http-port",
        "--config",
        "--print-config-schema",
    ):
        assert flag in text
    assert "(default: 8000)" in text and "(default: triton)" in text and "(default: 0.0.0.0)" in text
    assert "frontend 'http' (plugin frontend_http, in-process); config file [frontend.http]" in text
    assert "--backend-directory" in text and "--rate-limit" in text


def test_help_works_with_a_broken_plugin() -> None:
    invocation = parse("-h", plugins=[*PLUGINS, ("ghost", "tritium_no_such_module_xyz")])
    assert "Plugins that failed to load" in invocation.output and "plugin 'ghost'" in invocation.output


def test_print_config_schema() -> None:
    invocation = parse("--print-config-schema")
    schema = json.loads(invocation.output)
    http = schema["properties"]["frontend"]["properties"]["http"]["properties"]
    assert http["port"] == {"type": "integer", "description": "HTTP port (--http-port)", "default": 8000}
    assert schema["properties"]["server"]["properties"]["model_control_mode"]["enum"] == ["none", "poll", "explicit"]
