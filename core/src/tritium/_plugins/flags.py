"""tritonserver's command-line flags: which ones the kernel implements, which belong to which plugin, and
which Tritium accepts without implementing them.

Three tables, one source of truth for ``tritium serve``, its ``--help``, the server config file
(``[server]`` keys are the kernel flags' names with ``_`` for ``-``) and docs/cli.md:

* :data:`KERNEL_OPTIONS`: flags the kernel implements, with type, default and help;
* :data:`PLUGIN_FAMILIES`: flag families owned by a plugin (``--http-*`` -> ``tritium-frontend-http``), so a
  flag of a plugin that is not installed gets an error saying what to install;
* :data:`TRITON_ONLY_FLAGS`: the rest of tritonserver's flags, each either ignored with a warning or
  refused because accepting it would mislead (e.g. SSL asked for but not served).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "FOREIGN_BOOL_FALSE",
    "FOREIGN_BOOL_TRUE",
    "KERNEL_FLAG_NAMES",
    "KERNEL_OPTIONS",
    "PLUGIN_FAMILIES",
    "TRITON_ONLY_FLAGS",
    "ForeignFlag",
    "KernelOption",
    "PluginFamily",
    "family_of",
    "parse_bool",
]


def parse_bool(text: str) -> bool:
    """tritonserver's boolean option values: ``true``/``on``/``1`` and ``false``/``off``/``0``, any case."""
    lowered = text.strip().lower()
    if lowered in ("true", "on", "1"):
        return True
    if lowered in ("false", "off", "0"):
        return False
    raise ValueError(f"invalid value for bool option: {text}")


@attrs.define(frozen=True)
class KernelOption:
    """A server option the kernel implements.

    ``key`` is its name in the config file's ``[server]`` table (None: command line only); ``flags`` the
    command-line spellings, first the canonical one; ``type`` one of bool, int, float, str, list (a
    repeatable flag / array of strings); ``minimum`` and ``maximum`` bound numbers.
    """

    key: str
    flags: tuple[str, ...]
    type: type
    default: Any
    help: str
    choices: Sequence[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    in_file: bool = True
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return self.flags[0]


KERNEL_OPTIONS: tuple[KernelOption, ...] = (
    KernelOption(
        "model_repository",
        ("--model-repository", "--model-store"),
        list,
        [],
        "Path of a model repository; repeat for several. Required (here or in the config file).",
        metavar="PATH",
    ),
    KernelOption(
        "model_control_mode",
        ("--model-control-mode",),
        str,
        "none",
        "none: load every model at startup, no changes after; poll: also reload what changes in the "
        "repository every --repository-poll-secs; explicit: load only --load-model models, then load and "
        "unload on request through the repository API.",
        choices=("none", "poll", "explicit"),
    ),
    KernelOption(
        "load_model",
        ("--load-model",),
        list,
        [],
        "Model to load at startup in explicit mode; repeat for several, '*' for all. Only valid with "
        "--model-control-mode=explicit.",
        metavar="NAME",
    ),
    KernelOption(
        "repository_poll_secs",
        ("--repository-poll-secs",),
        float,
        15.0,
        "Seconds between repository polls in poll mode.",
        minimum=0,
        metavar="SECS",
    ),
    KernelOption(
        "model_config_name",
        ("--model-config-name",),
        str,
        "",
        "Use <model>/configs/<NAME>.pbtxt instead of <model>/config.pbtxt where that file exists.",
        metavar="NAME",
    ),
    KernelOption(
        "strict_model_config",
        ("--strict-model-config",),
        bool,
        False,
        "DEPRECATED (use --disable-auto-complete-config): true disables config auto-completion.",
    ),
    KernelOption(
        "disable_auto_complete_config",
        ("--disable-auto-complete-config",),
        bool,
        False,
        "Do not let backends complete a missing or partial config.pbtxt from the model file.",
    ),
    KernelOption(
        "allow_soft_placement",
        ("--allow-soft-placement",),
        bool,
        True,
        "Place KIND_GPU instances on the CPU when no GPU is available (else loading fails).",
    ),
    KernelOption(
        "exit_on_error",
        ("--exit-on-error",),
        bool,
        True,
        "Exit when a model fails to load at startup (false: serve the models that loaded).",
    ),
    KernelOption(
        "exit_timeout_secs",
        ("--exit-timeout-secs",),
        float,
        30.0,
        "On SIGINT/SIGTERM, seconds to wait for in-flight requests before exiting.",
        minimum=0,
        metavar="SECS",
    ),
    KernelOption(
        "strict_readiness",
        ("--strict-readiness",),
        bool,
        True,
        "Report the server ready only when every model that should be loaded is ready.",
    ),
    KernelOption(
        "allow_client_shm",
        ("--allow-client-shm",),
        bool,
        False,
        "Allow clients to register system and CUDA shared-memory regions.",
    ),
    KernelOption(
        "model_load_thread_count",
        ("--model-load-thread-count",),
        int,
        4,
        "Models loaded in parallel.",
        minimum=1,
        metavar="N",
    ),
    KernelOption(
        "inline_execution_us",
        ("--inline-execution-us",),
        int,
        200,
        "Tritium only: a model instance whose executions average less than this many microseconds runs on "
        "the event loop thread instead of its worker thread, saving the thread hand-off (0 = always use "
        "worker threads).",
        minimum=0,
        metavar="US",
    ),
    KernelOption(
        "workers",
        ("--workers",),
        int,
        1,
        "Tritium only: processes serving the frontends (HTTP, gRPC) on every core; the models, schedulers "
        "and batchers then run once, in one more process (the model executor). 0 = one per usable core "
        "(CPU affinity and cgroup quota); 1 (the default for now) = one process for everything.",
        minimum=0,
        metavar="N",
    ),
    KernelOption(
        "worker_poll_us",
        ("--worker-poll-us",),
        int,
        500,
        "Tritium only, with --workers N > 1: for how many microseconds after traffic between a worker and the "
        "executor both keep looking for the next message instead of sleeping (a wake-up costs tens of "
        "microseconds to both processes on a virtual machine); 0 = sleep at once.",
        minimum=0,
        maximum=100_000,
        metavar="US",
    ),
    KernelOption(
        "backend_config",
        ("--backend-config",),
        list,
        [],
        "A backend setting, '<backend>,<setting>=<value>', or '<setting>=<value>' for every backend (e.g. "
        "default-max-batch-size=4); repeatable. In the config file: [backend.<name>] tables.",
        in_file=False,
        metavar="[BACKEND,]KEY=VALUE",
    ),
    KernelOption("log_verbose", ("--log-verbose",), int, 0, "Verbose logging level; 0 is off.", minimum=0),
    KernelOption("log_info", ("--log-info",), bool, True, "Log informational messages."),
    KernelOption("log_warning", ("--log-warning",), bool, True, "Log warnings."),
    KernelOption("log_error", ("--log-error",), bool, True, "Log errors."),
    KernelOption(
        "log_format",
        ("--log-format",),
        str,
        "default",
        "default: 'I1125 16:20:00.123456 1234 file.py:42] msg'; ISO8601: '2024-11-25T16:20:00Z I 1234 "
        "file.py:42] msg' (times in UTC).",
        choices=("default", "ISO8601"),
    ),
    KernelOption(
        "log_file", ("--log-file",), str, "", "Append the log to this file instead of stderr.", metavar="PATH"
    ),
    KernelOption("id", ("--id",), str, "triton", "Server name reported in the server metadata."),
    KernelOption(
        "plugin",
        ("--plugin",),
        list,
        [],
        "Also load the plugin in this importable module ('module' or 'module:object' holding the hook "
        "implementations), besides the installed entry points; repeatable. For development and tests.",
        metavar="MODULE",
    ),
    KernelOption(
        "disable_plugin",
        ("--disable-plugin",),
        list,
        [],
        "Do not load the plugin with this entry-point name (see 'tritium plugins'); repeatable.",
        metavar="NAME",
    ),
)

KERNEL_FLAG_NAMES: frozenset[str] = frozenset(
    [flag for opt in KERNEL_OPTIONS for flag in opt.flags] + ["--config", "--print-config-schema", "--help", "-h"]
)


@attrs.define(frozen=True)
class PluginFamily:
    """tritonserver flags that belong to one plugin's component."""

    kind: str
    name: str
    plugin: str
    distribution: str
    prefixes: tuple[str, ...]
    flags: tuple[str, ...]

    def owns(self, flag: str) -> bool:
        return flag in self.flags or flag.startswith(self.prefixes)

    @property
    def kind_words(self) -> str:
        return self.kind.replace("_", " ")


PLUGIN_FAMILIES: tuple[PluginFamily, ...] = (
    PluginFamily(
        "frontend",
        "http",
        "frontend_http",
        "tritium-frontend-http",
        ("--http-",),
        ("--allow-http", "--reuse-http-port"),
    ),
    PluginFamily(
        "frontend",
        "grpc",
        "frontend_grpc",
        "tritium-frontend-grpc",
        ("--grpc-",),
        ("--allow-grpc", "--reuse-grpc-port"),
    ),
    PluginFamily(
        "metrics_sink",
        "prometheus",
        "metrics_prometheus",
        "tritium-metrics-prometheus",
        ("--metrics-",),
        ("--allow-metrics", "--allow-cpu-metrics", "--allow-gpu-metrics"),
    ),
)


def family_of(flag: str) -> PluginFamily | None:
    """The plugin family a tritonserver flag belongs to, if any."""
    for family in PLUGIN_FAMILIES:
        if family.owns(flag):
            return family
    return None


FOREIGN_BOOL_FALSE = ("false", "off", "0")
FOREIGN_BOOL_TRUE = ("true", "on", "1")


@attrs.define(frozen=True)
class ForeignFlag:
    """A tritonserver flag Tritium's kernel does not implement.

    ``boolean``: takes an optional true/false value (else a required value). ``harmless`` values (lower
    case) ask for nothing Tritium lacks and are accepted silently. Otherwise ``policy`` decides: ``"warn"``
    ignores the flag with a warning, ``"error"`` refuses it because ignoring it would mislead. A flag of a
    :data:`PLUGIN_FAMILIES` family is only looked up here when its plugin is installed but does not
    declare it.
    """

    flag: str
    why: str
    policy: str = "warn"
    boolean: bool = False
    harmless: tuple[str, ...] = ()


_NO_HTTP_TUNING = "the HTTP frontend does not implement it"
_NO_GRPC_TUNING = "the gRPC frontend does not implement it"
_SSL = "the gRPC frontend installed does not serve TLS; use a TLS-terminating proxy"

TRITON_ONLY_FLAGS: tuple[ForeignFlag, ...] = (
    # Backends and devices: Tritium's backends are Python plugins and manage their own memory.
    ForeignFlag("--backend-directory", "backends are Python plugins found through entry points (tritium plugins)"),
    ForeignFlag("--repoagent-directory", "repository agents are not supported"),
    ForeignFlag("--pinned-memory-pool-byte-size", "frameworks manage their own host memory"),
    ForeignFlag("--cuda-memory-pool-byte-size", "frameworks manage their own GPU memory"),
    ForeignFlag("--cuda-virtual-address-size", "frameworks manage their own GPU memory"),
    ForeignFlag("--min-supported-compute-capability", "frameworks check GPU compatibility themselves"),
    ForeignFlag("--buffer-manager-thread-count", "there is no buffer manager thread pool"),
    ForeignFlag("--host-policy", "host policies (NUMA binding) are not supported"),
    ForeignFlag("--model-load-gpu-limit", "GPU memory limits for model loading are not enforced"),
    ForeignFlag(
        "--enable-peer-access", "GPU peer access is left to the frameworks", boolean=True, harmless=FOREIGN_BOOL_FALSE
    ),
    ForeignFlag("--model-load-retry-count", "failed model loads are not retried", harmless=("0",)),
    ForeignFlag(
        "--model-namespacing",
        "model namespacing is not supported: two models of one name in different repositories are an error",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_FALSE,
    ),
    # Scheduling and caching.
    ForeignFlag(
        "--rate-limit",
        "the rate limiter is not implemented; instances execute as soon as they are free",
        policy="error",
        harmless=("off",),
    ),
    ForeignFlag(
        "--rate-limit-resource", "the rate limiter is not implemented (resources are not accounted)", policy="error"
    ),
    ForeignFlag("--cache-config", "the response cache is not implemented; every request executes"),
    ForeignFlag("--cache-directory", "the response cache is not implemented"),
    ForeignFlag("--response-cache-byte-size", "DEPRECATED in Triton; the response cache is not implemented"),
    # Tracing.
    ForeignFlag("--trace-config", "tracing is not implemented; no traces are written"),
    ForeignFlag("--trace-file", "tracing is not implemented (and the flag is deprecated in Triton)"),
    ForeignFlag("--trace-level", "tracing is not implemented", harmless=("off",)),
    ForeignFlag("--trace-rate", "tracing is not implemented"),
    ForeignFlag("--trace-count", "tracing is not implemented"),
    ForeignFlag("--trace-log-frequency", "tracing is not implemented"),
    # Cloud endpoints Tritium does not serve.
    ForeignFlag(
        "--allow-sagemaker",
        "there is no SageMaker frontend",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_FALSE,
    ),
    ForeignFlag("--sagemaker-port", "there is no SageMaker frontend"),
    ForeignFlag("--sagemaker-safe-port-range", "there is no SageMaker frontend"),
    ForeignFlag("--sagemaker-thread-count", "there is no SageMaker frontend"),
    ForeignFlag(
        "--allow-vertex-ai",
        "there is no Vertex AI frontend",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_FALSE,
    ),
    ForeignFlag("--vertex-ai-port", "there is no Vertex AI frontend"),
    ForeignFlag("--vertex-ai-thread-count", "there is no Vertex AI frontend"),
    ForeignFlag("--vertex-ai-default-model", "there is no Vertex AI frontend"),
    # HTTP frontend flags, when the installed HTTP plugin does not declare them.
    ForeignFlag(
        "--allow-http",
        "the HTTP frontend installed cannot be switched off",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_TRUE,
    ),
    ForeignFlag("--http-port", _NO_HTTP_TUNING, policy="error"),
    ForeignFlag("--http-address", _NO_HTTP_TUNING, policy="error"),
    ForeignFlag("--http-thread-count", "the HTTP frontend runs on the server's event loop"),
    ForeignFlag("--http-header-forward-pattern", "HTTP headers are not forwarded to backends"),
    ForeignFlag("--http-max-input-size", _NO_HTTP_TUNING),
    ForeignFlag(
        "--http-restricted-api",
        "the HTTP frontend installed cannot restrict APIs; refusing to serve them unrestricted",
        policy="error",
    ),
    ForeignFlag("--reuse-http-port", _NO_HTTP_TUNING, boolean=True, harmless=FOREIGN_BOOL_FALSE),
    # gRPC frontend flags, when the installed gRPC plugin does not declare them.
    ForeignFlag(
        "--allow-grpc",
        "the gRPC frontend installed cannot be switched off",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_TRUE,
    ),
    ForeignFlag("--grpc-port", _NO_GRPC_TUNING, policy="error"),
    ForeignFlag("--grpc-address", _NO_GRPC_TUNING, policy="error"),
    ForeignFlag("--grpc-header-forward-pattern", "gRPC metadata is not forwarded to backends"),
    ForeignFlag("--grpc-infer-allocation-pool-size", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-max-response-pool-size", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-infer-response-compression-level", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-keepalive-time", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-keepalive-timeout", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-keepalive-permit-without-calls", _NO_GRPC_TUNING, boolean=True),
    ForeignFlag("--grpc-http2-max-pings-without-data", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-http2-min-recv-ping-interval-without-data", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-http2-max-ping-strikes", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-max-connection-age", _NO_GRPC_TUNING),
    ForeignFlag("--grpc-max-connection-age-grace", _NO_GRPC_TUNING),
    ForeignFlag(
        "--grpc-restricted-protocol",
        "the gRPC frontend installed cannot restrict protocols; refusing to serve them unrestricted",
        policy="error",
    ),
    ForeignFlag("--grpc-use-ssl", _SSL, policy="error", boolean=True, harmless=FOREIGN_BOOL_FALSE),
    ForeignFlag("--grpc-use-ssl-mutual", _SSL, policy="error", boolean=True, harmless=FOREIGN_BOOL_FALSE),
    ForeignFlag("--grpc-server-cert", _SSL, policy="error"),
    ForeignFlag("--grpc-server-key", _SSL, policy="error"),
    ForeignFlag("--grpc-root-cert", _SSL, policy="error"),
    ForeignFlag("--reuse-grpc-port", _NO_GRPC_TUNING, boolean=True, harmless=FOREIGN_BOOL_FALSE),
    # Metrics flags, when the installed metrics plugin does not declare them.
    ForeignFlag(
        "--allow-metrics",
        "the metrics sink installed cannot be switched off",
        policy="error",
        boolean=True,
        harmless=FOREIGN_BOOL_TRUE,
    ),
    ForeignFlag("--metrics-port", "the metrics sink installed has no port", policy="error"),
    ForeignFlag("--metrics-address", "the metrics sink installed has no address", policy="error"),
    ForeignFlag("--metrics-interval-ms", "metrics are updated on every event, not polled"),
    ForeignFlag("--metrics-config", "the metrics sink installed takes no settings"),
    ForeignFlag("--allow-gpu-metrics", "no GPU metrics are collected", boolean=True, harmless=FOREIGN_BOOL_FALSE),
    ForeignFlag("--allow-cpu-metrics", "no CPU metrics are collected", boolean=True, harmless=FOREIGN_BOOL_FALSE),
)
