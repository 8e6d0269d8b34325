"""The gRPC frontend's options (tritonserver's ``--grpc-*`` flags) and their validation.

Cheap to import: no grpc here. :func:`GrpcSettings.from_options` turns the resolved option mapping the
kernel hands to the factory into a typed record, with Triton's error messages for bad values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tritium import ConfigError, OptionSpec, protocol

INT32_MAX = 2**31 - 1
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Largest request message accepted by default: 64 MiB, as Triton's HTTP limit (its gRPC one is 2 GiB)."""

RESTRICTED_CATEGORIES = protocol.RESTRICTED_CATEGORIES

RESTRICTED_HEADER_PREFIX = "triton-grpc-protocol-"
COMPRESSION_LEVELS = ("none", "low", "medium", "high")
TRANSPORTS = ("native", "grpcio")

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("port", int, 8001, "The port for the server to listen on for GRPC requests.", "--grpc-port"),
    OptionSpec("address", str, "0.0.0.0", "The address for the grpc server to bind to.", "--grpc-address"),
    OptionSpec(
        "reuse_port",
        bool,
        False,
        "Allow several servers to listen on the same GRPC port (SO_REUSEPORT).",
        "--reuse-grpc-port",
    ),
    OptionSpec(
        "header_forward_pattern",
        str,
        "",
        "Regular expression (case-insensitive) of GRPC headers forwarded as request parameters.",
        "--grpc-header-forward-pattern",
    ),
    OptionSpec("use_ssl", bool, False, "Use SSL/TLS for GRPC requests.", "--grpc-use-ssl"),
    OptionSpec(
        "use_ssl_mutual",
        bool,
        False,
        "Use mutual TLS (clients must present a certificate signed by --grpc-root-cert); implies "
        "--grpc-use-ssl.",
        "--grpc-use-ssl-mutual",
    ),
    OptionSpec("server_cert", str, "", "File holding the PEM-encoded server certificate.", "--grpc-server-cert"),
    OptionSpec("server_key", str, "", "File holding the PEM-encoded server key.", "--grpc-server-key"),
    OptionSpec(
        "root_cert", str, "", "File holding the PEM-encoded root certificate (mutual TLS).", "--grpc-root-cert"
    ),
    OptionSpec(
        "infer_response_compression_level",
        str,
        "none",
        "Compression level of inference responses: none, low, medium or high.",
        "--grpc-infer-response-compression-level",
        choices=COMPRESSION_LEVELS,
    ),
    OptionSpec(
        "keepalive_time",
        int,
        7200000,
        "Period (ms) after which a keepalive ping is sent on the transport.",
        "--grpc-keepalive-time",
    ),
    OptionSpec(
        "keepalive_timeout",
        int,
        20000,
        "Period (ms) the sender of a keepalive ping waits for an acknowledgement.",
        "--grpc-keepalive-timeout",
    ),
    OptionSpec(
        "keepalive_permit_without_calls",
        bool,
        False,
        "Allow keepalive pings when no call is in flight.",
        "--grpc-keepalive-permit-without-calls",
    ),
    OptionSpec(
        "http2_max_pings_without_data",
        int,
        2,
        "Maximum pings sent without a data/header frame (0: no limit).",
        "--grpc-http2-max-pings-without-data",
    ),
    OptionSpec(
        "http2_min_recv_ping_interval_without_data",
        int,
        300000,
        "Minimum time (ms) between received pings without data before a ping counts as a strike.",
        "--grpc-http2-min-recv-ping-interval-without-data",
    ),
    OptionSpec(
        "http2_max_ping_strikes",
        int,
        2,
        "Bad pings tolerated before the connection is closed (0: any number).",
        "--grpc-http2-max-ping-strikes",
    ),
    OptionSpec(
        "max_connection_age",
        int,
        0,
        "Maximum time (ms) a connection may exist (0: unlimited).",
        "--grpc-max-connection-age",
    ),
    OptionSpec(
        "max_connection_age_grace",
        int,
        0,
        "Grace period (ms) after the maximum connection age (0: unlimited).",
        "--grpc-max-connection-age-grace",
    ),
    OptionSpec(
        "restricted_protocol",
        list,
        [],
        "Restrict protocols to clients sending a header: <protocols>:<key>=<value>, protocols from "
        + ", ".join(RESTRICTED_CATEGORIES)
        + "; the header is triton-grpc-protocol-<key>. Repeatable.",
        "--grpc-restricted-protocol",
    ),
    OptionSpec(
        "max_response_pool_size",
        int,
        INT32_MAX,
        "Maximum responses queued per ModelStreamInfer stream before producers wait (backpressure).",
        "--grpc-max-response-pool-size",
    ),
    OptionSpec(
        "max_message_size",
        int,
        DEFAULT_MAX_MESSAGE_SIZE,
        "Largest request message accepted, in bytes; larger ones are refused with RESOURCE_EXHAUSTED before "
        "they are read (Triton: 2 GiB). Use shared memory for larger tensors.",
        "--grpc-max-message-size",
    ),
    OptionSpec(
        "transport",
        str,
        "native",
        "Tritium's own: how gRPC is served. native: this plugin's HTTP/2 implementation on the event loop "
        "(fastest); grpcio: grpc.aio (grpc-core).",
        "--grpc-transport",
        choices=TRANSPORTS,
    ),
    OptionSpec(
        "infer_thread_count",
        int,
        2,
        "Accepted for compatibility; requests are served on the event loop (2 to 128).",
        "--grpc-infer-thread-count",
    ),
    OptionSpec(
        "infer_allocation_pool_size",
        int,
        8,
        "Accepted for compatibility; has no effect.",
        "--grpc-infer-allocation-pool-size",
    ),
)
"""Every option of the gRPC frontend, with tritonserver's flag names and defaults."""


@attrs.define(frozen=True, slots=True)
class Restriction:
    """A restricted category: requests must carry metadata ``header`` with ``value``."""

    header: str
    value: str


@attrs.define(frozen=True, slots=True, kw_only=True)
class GrpcSettings:
    """The validated options of one gRPC frontend."""

    port: int = 8001
    address: str = "0.0.0.0"
    reuse_port: bool = False
    use_ssl: bool = False
    use_ssl_mutual: bool = False
    server_cert: str = ""
    server_key: str = ""
    root_cert: str = ""
    compression_level: str = "none"
    header_forward_pattern: re.Pattern[str] | None = None
    restrictions: Mapping[str, Restriction] = attrs.field(factory=dict)
    keepalive_time_ms: int = 7200000
    keepalive_timeout_ms: int = 20000
    keepalive_permit_without_calls: bool = False
    http2_max_pings_without_data: int = 2
    http2_min_recv_ping_interval_without_data_ms: int = 300000
    http2_max_ping_strikes: int = 2
    max_connection_age_ms: int = 0
    max_connection_age_grace_ms: int = 0
    max_response_pool_size: int = INT32_MAX
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    transport: str = "native"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GrpcSettings:
        """Validate the option mapping (names as in :data:`OPTIONS`; missing ones take defaults)."""
        defaults = {spec.name: spec.default for spec in OPTIONS}
        unknown = set(options) - set(defaults) - {"enabled"}
        if unknown:
            raise ConfigError(f"unknown gRPC frontend option(s): {', '.join(sorted(unknown))}")
        get = {**defaults, **options}.__getitem__

        level = str(get("infer_response_compression_level")).lower()
        if level not in COMPRESSION_LEVELS:
            raise ConfigError("invalid argument for --grpc_infer_response_compression_level")
        threads = int(get("infer_thread_count"))
        if not 2 <= threads <= 128:
            raise ConfigError("invalid argument for --grpc_infer_thread_count. Must be in the range 2 to 128.")
        pool = int(get("max_response_pool_size"))
        if pool <= 0:
            raise ConfigError("Error: --grpc-max-response-pool-size must be greater than 0.")
        max_message = int(get("max_message_size"))
        if not 0 < max_message <= INT32_MAX:
            raise ConfigError(f"--grpc-max-message-size must be between 1 and {INT32_MAX}, got {max_message}")
        pattern_text = str(get("header_forward_pattern") or "")
        try:
            pattern = re.compile(pattern_text, re.IGNORECASE) if pattern_text else None
        except re.error as exc:
            raise ConfigError(f"invalid --grpc-header-forward-pattern '{pattern_text}': {exc}") from None
        transport = str(get("transport")).lower()
        if transport not in TRANSPORTS:
            raise ConfigError(f"invalid --grpc-transport '{transport}': choose one of {', '.join(TRANSPORTS)}")
        port = int(get("port"))
        if not 0 <= port <= 65535:
            raise ConfigError(f"invalid --grpc-port {port}")
        mutual = bool(get("use_ssl_mutual"))
        return cls(
            port=port,
            address=str(get("address")),
            reuse_port=bool(get("reuse_port")),
            use_ssl=bool(get("use_ssl")) or mutual,
            use_ssl_mutual=mutual,
            server_cert=str(get("server_cert") or ""),
            server_key=str(get("server_key") or ""),
            root_cert=str(get("root_cert") or ""),
            compression_level=level,
            header_forward_pattern=pattern,
            restrictions=parse_restrictions(get("restricted_protocol") or ()),
            keepalive_time_ms=int(get("keepalive_time")),
            keepalive_timeout_ms=int(get("keepalive_timeout")),
            keepalive_permit_without_calls=bool(get("keepalive_permit_without_calls")),
            http2_max_pings_without_data=int(get("http2_max_pings_without_data")),
            http2_min_recv_ping_interval_without_data_ms=int(get("http2_min_recv_ping_interval_without_data")),
            http2_max_ping_strikes=int(get("http2_max_ping_strikes")),
            max_connection_age_ms=int(get("max_connection_age")),
            max_connection_age_grace_ms=int(get("max_connection_age_grace")),
            max_response_pool_size=pool,
            max_message_size=max_message,
            transport=transport,
        )


def parse_restrictions(values: Sequence[str] | str) -> dict[str, Restriction]:
    """Parse repeated ``<protocols>:<key>=<value>`` values into category -> restriction, as Triton does
    (unknown categories and a category in two groups are errors)."""
    try:
        parsed = protocol.parse_restrictions(
            values, flag="--grpc-restricted-protocol", noun="protocol", format_hint="<config name>:<setting>=<value>"
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return {category: Restriction(RESTRICTED_HEADER_PREFIX + key, value) for category, (key, value) in parsed.items()}
