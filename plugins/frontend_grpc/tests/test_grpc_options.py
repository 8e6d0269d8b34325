"""The gRPC frontend's options: registration, validation (Triton's messages) and channel arguments."""

from __future__ import annotations

import pytest
from tritium_frontend_grpc import plugin
from tritium_frontend_grpc._frontend import channel_options
from tritium_frontend_grpc._options import (
    DEFAULT_MAX_MESSAGE_SIZE,
    INT32_MAX,
    OPTIONS,
    GrpcSettings,
    Restriction,
    parse_restrictions,
)

from tritium import ConfigError, FrontendSpec


def test_registered_frontend_spec() -> None:
    (spec,) = plugin.tritium_register_frontends()
    assert isinstance(spec, FrontendSpec)
    assert (spec.name, spec.enable_flag) == ("grpc", "--allow-grpc")
    flags = {o.flag: o.default for o in spec.options}
    assert flags["--grpc-port"] == 8001 and flags["--grpc-address"] == "0.0.0.0"
    assert flags["--grpc-keepalive-time"] == 7200000 and flags["--grpc-keepalive-timeout"] == 20000
    assert flags["--grpc-http2-max-pings-without-data"] == 2
    assert flags["--grpc-http2-min-recv-ping-interval-without-data"] == 300000
    assert flags["--grpc-http2-max-ping-strikes"] == 2
    assert flags["--grpc-infer-response-compression-level"] == "none"
    assert "--grpc-restricted-protocol" in flags and "--grpc-use-ssl-mutual" in flags


def test_defaults() -> None:
    settings = GrpcSettings.from_options({o.name: o.default for o in OPTIONS} | {"enabled": True})
    assert settings == GrpcSettings()
    assert settings.max_response_pool_size == INT32_MAX


def test_restrictions_parse_like_triton() -> None:
    parsed = parse_restrictions(["health,inference:key=v=1", "model-config:other="])
    assert parsed == {
        "health": Restriction("triton-grpc-protocol-key", "v=1"),
        "inference": Restriction("triton-grpc-protocol-key", "v=1"),
        "model-config": Restriction("triton-grpc-protocol-other", ""),
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["health"], "--grpc-restricted-protocol option format is '<config name>:<setting>=<value>'. Got health"),
        (["health:key"], "option format is"),
        (["nope:k=v"], "unknown restricted protocol 'nope'"),
        (["health:a=1", "health:b=2"], "restricted protocol 'health' can not be specified in multiple config groups"),
    ],
)
def test_restriction_errors(values: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("'", "'")):
        parse_restrictions(values)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"infer_response_compression_level": "max"}, "grpc_infer_response_compression_level"),
        ({"infer_thread_count": 1}, "Must be in the range 2 to 128"),
        ({"max_response_pool_size": 0}, "must be greater than 0"),
        ({"header_forward_pattern": "("}, "invalid --grpc-header-forward-pattern"),
        ({"bogus": 1}, "unknown gRPC frontend option"),
    ],
)
def test_invalid_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GrpcSettings.from_options(options)


def test_mutual_tls_implies_tls_and_compression_is_case_insensitive() -> None:
    settings = GrpcSettings.from_options({"use_ssl_mutual": True, "infer_response_compression_level": "HIGH"})
    assert settings.use_ssl and settings.use_ssl_mutual
    assert settings.compression_level == "high"


def test_channel_options_follow_triton() -> None:
    options = dict(channel_options(GrpcSettings.from_options({"keepalive_time": 1000, "max_connection_age": 5})))
    assert options["grpc.max_receive_message_length"] == DEFAULT_MAX_MESSAGE_SIZE == 64 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == INT32_MAX
    assert options["grpc.keepalive_time_ms"] == 1000
    assert options["grpc.keepalive_timeout_ms"] == 20000
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.http2.max_pings_without_data"] == 2
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 300000
    assert options["grpc.http2.max_ping_strikes"] == 2
    assert options["grpc.max_connection_age_ms"] == 5
    assert "grpc.max_connection_age_grace_ms" not in options
    assert options["grpc.so_reuseport"] == 0


async def test_port_in_use_is_an_error(echo_service: object, make_frontend: object) -> None:
    first = await make_frontend(echo_service)  # type: ignore[operator]
    with pytest.raises(OSError, match="already in use"):
        await make_frontend(echo_service, port=first.port)  # type: ignore[operator]


async def test_tls_without_certificates_is_a_config_error(echo_service: object, make_frontend: object) -> None:
    with pytest.raises(ConfigError, match="--grpc-server-cert"):
        await make_frontend(echo_service, use_ssl=True)  # type: ignore[operator]


def test_max_message_size_is_a_bounded_setting() -> None:
    settings = GrpcSettings.from_options({"max_message_size": 1024})
    assert dict(channel_options(settings))["grpc.max_receive_message_length"] == 1024
    for bad in (0, -1, INT32_MAX + 1):
        with pytest.raises(ConfigError, match="--grpc-max-message-size must be between 1 and"):
            GrpcSettings.from_options({"max_message_size": bad})
