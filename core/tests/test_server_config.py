"""The server config file: TOML/YAML, validation with key paths, precedence, schema."""

from __future__ import annotations

import json
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import tritium
from tritium import ConfigError, FrontendSpec, MetricsSinkSpec, OptionSpec, install_command
from tritium._cli.serve_args import UsageError, parse_serve_args
from tritium._cli.server_config import (
    assemble_server_options,
    config_schema,
    read_server_config,
    server_options_from_config,
)
from tritium._plugins.host import PluginHost


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
        OptionSpec("ratio", float, 0.5, "a ratio"),
        OptionSpec("mode", str, "a", "a choice", choices=["a", "b"]),
    ],
)
SINK = MetricsSinkSpec(
    name="prometheus",
    factory=_factory,
    options=[OptionSpec("port", int, 8002, "metrics port", flag="--metrics-port")],
    enable_flag="--allow-metrics",
)


def _module(**hooks: list[Any]) -> types.ModuleType:
    module = types.ModuleType("m")
    for hook, specs in hooks.items():
        setattr(module, f"tritium_register_{hook}", tritium.hookimpl(lambda specs=specs: specs))
    return module


PLUGINS = [
    ("frontend_http", _module(frontends=[HTTP])),
    ("metrics_prometheus", _module(metrics_sinks=[SINK])),
]


@pytest.fixture
def host() -> PluginHost:
    loaded = PluginHost(extra_plugins=PLUGINS, discover=False)
    loaded.load()
    return loaded


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


FULL_TOML = """
    [server]
    model_repository = ["models", "/abs/other"]
    model_control_mode = "explicit"
    load_model = ["densenet"]
    repository_poll_secs = 5
    model_config_name = "cpu"
    strict_model_config = false
    disable_auto_complete_config = true
    allow_soft_placement = false
    exit_on_error = false
    exit_timeout_secs = 2.5
    strict_readiness = false
    allow_client_shm = true
    model_load_thread_count = 2
    log_verbose = 1
    log_info = false
    log_warning = false
    log_error = false
    log_format = "ISO8601"
    log_file = "tritium.log"
    id = "file-server"
    disable_plugin = []

    [backend]
    default-max-batch-size = 8

    [backend.python]
    shm-default-byte-size = 1048576
    flag = true
    name = "x"

    [frontend.http]
    port = 9000
    restricted_api = ["health:k=v"]
    ratio = 1

    [metrics_sink.prometheus]
    enabled = false
"""


def test_full_toml(tmp_path: Path, host: PluginHost) -> None:
    path = write(tmp_path, "server.toml", FULL_TOML)
    options = assemble_server_options(host, file=read_server_config(path))
    assert options.model_repositories == (str(tmp_path / "models"), "/abs/other")
    assert options.model_control_mode == "explicit" and options.load_models == ("densenet",)
    assert options.repository_poll_secs == 5.0 and isinstance(options.repository_poll_secs, float)
    assert options.model_config_name == "cpu"
    assert options.auto_complete_config is False
    assert (options.allow_soft_placement, options.exit_on_error, options.strict_readiness) == (False, False, False)
    assert options.exit_timeout_secs == 2.5 and options.allow_client_shm is True
    assert options.model_load_thread_count == 2
    assert (options.log_verbose, options.log_info, options.log_warning, options.log_error) == (1, False, False, False)
    assert options.log_format == "ISO8601" and options.log_file == str(tmp_path / "tritium.log")
    assert options.server_id == "file-server"
    assert options.backend_config == {
        "": {"default-max-batch-size": "8"},
        "python": {"shm-default-byte-size": "1048576", "flag": "true", "name": "x"},
    }
    assert options.components == {
        "frontend.http": {
            "enabled": True,
            "port": 9000,
            "address": "0.0.0.0",
            "restricted_api": ["health:k=v"],
            "ratio": 1.0,
            "mode": "a",
        },
        "metrics_sink.prometheus": {"enabled": False, "port": 8002},
    }


def test_yaml_equivalent(tmp_path: Path, host: PluginHost) -> None:
    toml = write(tmp_path, "server.toml", FULL_TOML)
    yaml_text = """
        server:
          model_repository: [models, /abs/other]
          model_control_mode: explicit
          load_model: [densenet]
          repository_poll_secs: 5
          model_config_name: cpu
          strict_model_config: false
          disable_auto_complete_config: true
          allow_soft_placement: false
          exit_on_error: false
          exit_timeout_secs: 2.5
          strict_readiness: false
          allow_client_shm: true
          model_load_thread_count: 2
          log_verbose: 1
          log_info: false
          log_warning: false
          log_error: false
          log_format: ISO8601
          log_file: tritium.log
          id: file-server
          disable_plugin: []
        backend:
          default-max-batch-size: 8
          python: {shm-default-byte-size: 1048576, flag: true, name: x}
        frontend:
          http: {port: 9000, restricted_api: ["health:k=v"], ratio: 1}
        metrics_sink:
          prometheus: {enabled: false}
    """
    for name in ("server.yaml", "server.yml"):
        yaml = write(tmp_path, name, yaml_text)
        assert assemble_server_options(host, file=read_server_config(yaml)) == assemble_server_options(
            host, file=read_server_config(toml)
        )


def test_empty_files(tmp_path: Path, host: PluginHost) -> None:
    for name in ("a.toml", "a.yaml"):
        options = assemble_server_options(host, file=read_server_config(write(tmp_path, name, "")))
        assert options.model_repositories == () and options.components["frontend.http"]["port"] == 8000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serverr]\n", "server.toml: serverr: unknown key (did you mean 'server'?); expected one of"),
        (
            "[server]\nmodel_repo = ['x']\n",
            "server.toml: server.model_repo: unknown key (did you mean 'model_repository'?)",
        ),
        ("[server]\nhttp_port = 1\n", "server.toml: server.http_port: unknown key"),
        ("[server]\nbackend_config = ['a=b']\n", "server.toml: server.backend_config: unknown key"),
        (
            "[server]\nmodel_repository = 'models'\n",
            "server.toml: server.model_repository: expected list of str, got str",
        ),
        (
            "[server]\nmodel_repository = ['a', 1]\n",
            "server.toml: server.model_repository: expected a list of strings, got an item of type int",
        ),
        ("[server]\nstrict_readiness = 'yes'\n", "server.toml: server.strict_readiness: expected bool, got str"),
        ("[server]\nlog_verbose = true\n", "server.toml: server.log_verbose: expected int, got bool"),
        ("[server]\nlog_verbose = 1.5\n", "server.toml: server.log_verbose: expected int, got float"),
        ("[server]\nlog_verbose = -1\n", "server.toml: server.log_verbose: must be at least 0, got -1"),
        ("[server]\nexit_timeout_secs = '3'\n", "server.toml: server.exit_timeout_secs: expected float, got str"),
        ("[server]\nmodel_control_mode = 'lazy'\n", "server.toml: server.model_control_mode: 'lazy' is not one of"),
        ("server = 3\n", "server.toml: server: expected a table, got int"),
        ("[backend]\nx = [1]\n", "server.toml: backend.x: expected a string, number or bool, got list"),
        (
            "[backend.python]\nx = {a = 1}\n",
            "server.toml: backend.python.x: expected a string, number or bool, got dict",
        ),
        ("frontend = 1\n", "server.toml: frontend: expected a table, got int"),
        ("[frontend]\nhttp = 1\n", "server.toml: frontend.http: expected a table, got int"),
        ("[server\n", "server.toml: invalid TOML:"),
    ],
)
def test_file_errors_name_the_key_path(
    tmp_path: Path, text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "server.toml", text)
    with pytest.raises(ConfigError) as caught:
        read_server_config("server.toml")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[frontend.http]\nport = '8000'\n", "server.toml: frontend.http.port: expected int, got str"),
        ("[frontend.http]\nport = true\n", "server.toml: frontend.http.port: expected int, got bool"),
        (
            "[frontend.http]\nprot = 1\n",
            "server.toml: frontend.http.prot: unknown key (did you mean 'port'?); expected one of",
        ),
        ("[frontend.http]\nenabled = 'no'\n", "server.toml: frontend.http.enabled: expected bool, got str"),
        ("[frontend.http]\nmode = 'c'\n", "server.toml: frontend.http.mode: 'c' is not one of 'a', 'b'"),
        ("[frontend.http]\nratio = 'x'\n", "server.toml: frontend.http.ratio: expected float, got str"),
        ("[frontend.http]\nrestricted_api = 'x'\n", "server.toml: frontend.http.restricted_api: expected list of str"),
        (
            "[frontend.grpc]\nport = 8001\n",
            "server.toml: frontend.grpc: no frontend named 'grpc' is installed (installed: http): "
            + install_command("tritium-frontend-grpc"),
        ),
        (
            "[frontend.sagemaker]\nport = 8001\n",
            "server.toml: frontend.sagemaker: no frontend named 'sagemaker' is installed",
        ),
        ("[metrics_sink.prometheus]\nport = 'x'\n", "server.toml: metrics_sink.prometheus.port: expected int, got str"),
    ],
)
def test_component_errors_name_the_key_path(
    tmp_path: Path, host: PluginHost, text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "server.toml", text)
    file = read_server_config("server.toml")
    with pytest.raises(ConfigError) as caught:
        assemble_server_options(host, file=file)
    assert message in str(caught.value)


def test_switching_off_a_missing_component_is_fine(tmp_path: Path, host: PluginHost) -> None:
    path = write(tmp_path, "s.toml", "[frontend.grpc]\nenabled = false\n")
    options = assemble_server_options(host, file=read_server_config(path))
    assert "frontend.grpc" not in options.components


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config file type '\.json'"):
        read_server_config(write(tmp_path, "s.json", "{}"))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        read_server_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_server_config(write(tmp_path, "s.yaml", "server: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"\(top level\): expected a table, got list"):
        read_server_config(write(tmp_path, "l.yaml", "- 1\n"))
    with pytest.raises(ConfigError, match="keys must be strings, got int 1"):
        read_server_config(write(tmp_path, "k.yaml", "server:\n  1: 2\n"))
    bad = tmp_path / "b.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_server_config(bad)


def test_load_model_rules_apply_to_the_file(tmp_path: Path, host: PluginHost) -> None:
    path = write(tmp_path, "s.toml", "[server]\nload_model = ['a']\n")
    with pytest.raises(ConfigError, match="requires setting '--model-control-mode=explicit'"):
        assemble_server_options(host, file=read_server_config(path))


# ----------------------------------------------------------------------------------------- precedence
def serve(*argv: str) -> tritium.ServerOptions:
    invocation = parse_serve_args(list(argv), extra_plugins=PLUGINS, discover=False)
    return invocation.options


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server.toml", FULL_TOML)
    options = serve(
        "--config",
        str(path),
        "--model-repository",
        "/flag/repo",
        "--load-model=resnet",
        "--log-verbose=0",
        "--strict-readiness",
        "--http-port",
        "7000",
        "--allow-metrics",
        "--backend-config",
        "python,flag=false",
        "--backend-config",
        "onnxruntime,threads=2",
    )
    assert options.model_repositories == ("/flag/repo",)  # a repeatable flag replaces the file's list
    assert options.model_control_mode == "explicit"
    assert options.load_models == ("resnet",)
    assert options.log_verbose == 0 and options.strict_readiness is True
    assert options.components["frontend.http"]["port"] == 7000
    assert options.components["frontend.http"]["restricted_api"] == ["health:k=v"]  # file, per key
    assert options.components["metrics_sink.prometheus"]["enabled"] is True
    assert options.backend_config["python"] == {"shm-default-byte-size": "1048576", "flag": "false", "name": "x"}
    assert options.backend_config["onnxruntime"] == {"threads": "2"}
    assert options.log_format == "ISO8601"  # untouched file value


def test_rules_apply_to_the_merged_options(tmp_path: Path) -> None:
    path = write(tmp_path, "server.toml", FULL_TOML)
    with pytest.raises(ConfigError, match="requires setting '--model-control-mode=explicit'"):
        serve("--config", str(path), "--model-control-mode=poll")


def test_disable_plugin_from_the_file_and_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path, "server.toml", "[server]\nmodel_repository = ['m']\ndisable_plugin = ['metrics_prometheus']\n"
    )
    options = serve("--config", str(path))
    assert "metrics_sink.prometheus" not in options.components
    assert options.disabled_plugins == ("metrics_prometheus",)
    options = serve("--config", str(path), "--disable-plugin", "frontend_http")
    assert "metrics_sink.prometheus" in options.components and "frontend.http" not in options.components
    with pytest.raises(UsageError, match="which is disabled"):
        serve("--config", str(path), "--metrics-port", "1")


def test_config_file_error_through_serve(tmp_path: Path) -> None:
    path = write(tmp_path, "server.toml", "[frontend.http]\nport = 'x'\n")
    with pytest.raises(ConfigError, match=r"server.toml: frontend.http.port: expected int, got str"):
        serve("--config", str(path), "--model-repository", "m")


def test_server_options_from_config(tmp_path: Path, host: PluginHost) -> None:
    path = write(tmp_path, "server.toml", "[server]\nmodel_repository = ['m']\n[frontend.http]\nport = 1\n")
    options = server_options_from_config(path, host=host)
    assert options.model_repositories == (str(tmp_path / "m"),)
    assert options.components["frontend.http"]["port"] == 1


# --------------------------------------------------------------------------------------------- schema
def test_schema_is_valid_and_accepts_the_example(tmp_path: Path, host: PluginHost) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import tomllib

    schema = config_schema(host)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    document = tomllib.loads(textwrap.dedent(FULL_TOML))
    document["frontend"]["grpc"] = {"enabled": False}
    assert list(validator.iter_errors(document)) == []
    bad = {"frontend": {"http": {"port": "x"}}, "server": {"nope": 1}}
    assert len(list(validator.iter_errors(bad))) == 2
    json.dumps(schema)


def test_schema_lists_kernel_and_plugin_options(host: PluginHost) -> None:
    schema = config_schema(host)
    server = schema["properties"]["server"]["properties"]
    assert "backend_config" not in server
    assert server["log_verbose"]["minimum"] == 0 and server["id"]["default"] == "triton"
    assert server["model_repository"]["type"] == "array"
    http = schema["properties"]["frontend"]["properties"]["http"]
    assert http["additionalProperties"] is False
    assert http["properties"]["enabled"]["default"] is True
    assert http["properties"]["mode"]["enum"] == ["a", "b"]
    assert http["properties"]["restricted_api"]["items"] == {"type": "string"}
    assert http["description"] == "From plugin 'frontend_http'."
    assert set(schema["properties"]["metrics_sink"]["properties"]) == {"prometheus"}
