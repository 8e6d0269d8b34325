"""The HTTP frontend's resolved settings, parsed once from the component options."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tritium import ConfigError, protocol

RESTRICTED_CATEGORIES = protocol.RESTRICTED_CATEGORIES


def _option(options: Mapping[str, Any], name: str, default: Any) -> Any:
    """Read an option by its spec name (``max_input_size``), accepting the flag spelling too."""
    if name in options:
        return options[name]
    return options.get(name.replace("_", "-"), default)


def parse_restricted_apis(specs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Parse ``--http-restricted-api`` values ``<api>[,<api>...]:<key>=<value>``.

    Returns category -> (header name, expected value). Raises ValueError with tritonserver's wording for
    an unknown category or one given in two groups.
    """
    return protocol.parse_restrictions(
        specs,
        flag="--http-restricted-api",
        noun="api",
        format_hint="<main config name>:<sub config name>=<value>",
    )


@attrs.define(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """HTTPS for the HTTP frontend (``--http-ssl*``, mirroring ``--grpc-use-ssl*``): PEM file paths."""

    server_cert: str
    server_key: str
    root_cert: str = ""
    mutual: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TlsSettings | None:
        """None unless ``ssl`` or ``ssl_mutual`` is on; ConfigError when a file it needs is not named."""
        mutual = bool(_option(options, "ssl_mutual", False))
        if not (bool(_option(options, "ssl", False)) or mutual):
            return None
        cert = str(_option(options, "server_cert", "") or "")
        key = str(_option(options, "server_key", "") or "")
        root = str(_option(options, "root_cert", "") or "")
        if not cert or not key:
            raise ConfigError("--http-ssl needs --http-server-cert and --http-server-key")
        if mutual and not root:
            raise ConfigError("--http-ssl-mutual needs --http-root-cert")
        return cls(server_cert=cert, server_key=key, root_cert=root, mutual=mutual)


@attrs.define(frozen=True, slots=True)
class HttpSettings:
    """What the HTTP frontend needs from its options, validated and preprocessed."""

    port: int = 8000
    address: str = "0.0.0.0"
    max_input_size: int = 1 << 26
    restricted: Mapping[str, tuple[str, str]] = attrs.field(factory=dict)
    header_forward: re.Pattern[str] | None = None
    thread_count: int = 8
    reuse_port: bool = False
    tls: TlsSettings | None = None
    """Serve HTTPS with these files (``--http-ssl``); None serves plain HTTP."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HttpSettings:
        """Build settings from the FrontendSpec options (keys as in :data:`HTTP_OPTIONS`)."""
        restricted_specs = _option(options, "restricted_api", []) or []
        if isinstance(restricted_specs, str):
            restricted_specs = [restricted_specs]
        pattern = _option(options, "header_forward_pattern", "") or ""
        max_input = int(_option(options, "max_input_size", 1 << 26))
        if max_input <= 0:
            raise ValueError(f"--http-max-input-size must be positive, got {max_input}")
        return cls(
            port=int(_option(options, "port", 8000)),
            address=str(_option(options, "address", "0.0.0.0")),
            max_input_size=max_input,
            restricted=parse_restricted_apis(list(restricted_specs)),
            header_forward=re.compile(pattern, re.IGNORECASE) if pattern else None,
            thread_count=int(_option(options, "thread_count", 8)),
            reuse_port=bool(_option(options, "reuse_port", False)),
            tls=TlsSettings.from_options(options),
        )
