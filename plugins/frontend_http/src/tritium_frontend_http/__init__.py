"""Tritium's HTTP/REST frontend: KServe v2 with Triton's extensions, served with aiohttp.

This module is the plugin's entry point (group ``tritium.plugins``, name ``frontend_http``). It only
declares the frontend and its options; aiohttp and the request handling are imported when the server
creates the frontend, so that ``tritium plugins`` and ``tritium serve --help`` stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import tritium
from tritium import FrontendSpec, OptionSpec

if TYPE_CHECKING:
    from tritium_frontend_http._frontend import HttpFrontend

DEFAULT_MAX_INPUT_SIZE = 1 << 26
"""Triton's ``HTTP_DEFAULT_MAX_INPUT_SIZE`` (64 MiB)."""

HTTP_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("port", int, 8000, "Port the HTTP/REST endpoint listens on.", flag="--http-port"),
    OptionSpec("address", str, "0.0.0.0", "Address the HTTP/REST endpoint binds to.", flag="--http-address"),
    OptionSpec(
        "max_input_size",
        int,
        DEFAULT_MAX_INPUT_SIZE,
        "Largest request body accepted, in bytes, before and after decompression.",
        flag="--http-max-input-size",
    ),
    OptionSpec(
        "restricted_api",
        list,
        [],
        "Restrict API groups to clients sending a header: '<api>[,<api>...]:<header>=<value>'. APIs: health, "
        "metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging.",
        flag="--http-restricted-api",
    ),
    OptionSpec(
        "header_forward_pattern",
        str,
        "",
        "Regular expression (case-insensitive); request headers whose name matches are passed to the model "
        "as string request parameters.",
        flag="--http-header-forward-pattern",
    ),
    OptionSpec(
        "thread_count",
        int,
        8,
        "Accepted for tritonserver compatibility. Tritium serves HTTP on one event loop; this only sizes "
        "the thread pool used for response compression of large bodies.",
        flag="--http-thread-count",
    ),
    OptionSpec(
        "reuse_port",
        bool,
        False,
        "Set SO_REUSEPORT on the HTTP socket so several servers can share the port.",
        flag="--reuse-http-port",
    ),
    OptionSpec("ssl", bool, False, "Serve HTTPS instead of HTTP on --http-port.", flag="--http-ssl"),
    OptionSpec(
        "ssl_mutual",
        bool,
        False,
        "Mutual TLS: clients must present a certificate signed by --http-root-cert; implies --http-ssl.",
        flag="--http-ssl-mutual",
    ),
    OptionSpec("server_cert", str, "", "File holding the PEM-encoded server certificate.", flag="--http-server-cert"),
    OptionSpec("server_key", str, "", "File holding the PEM-encoded server key.", flag="--http-server-key"),
    OptionSpec(
        "root_cert",
        str,
        "",
        "File holding the PEM-encoded CA certificate(s) client certificates must chain to (mutual TLS).",
        flag="--http-root-cert",
    ),
)


def create_frontend(service: tritium.InferenceService, options: Mapping[str, Any]) -> HttpFrontend:
    """The frontend factory named by the FrontendSpec: builds the aiohttp server on first use."""
    from tritium_frontend_http._frontend import HttpFrontend
    from tritium_frontend_http._settings import HttpSettings

    return HttpFrontend(service, HttpSettings.from_options(options))


@tritium.hookimpl
def tritium_register_frontends() -> list[FrontendSpec]:
    """Declare the ``http`` frontend, switched by ``--allow-http``."""
    return [
        FrontendSpec(
            name="http",
            factory=create_frontend,
            options=HTTP_OPTIONS,
            enable_flag="--allow-http",
            enabled_by_default=True,
            reuse_port_option="reuse_port",
            address_option="address",
            port_option="port",
        )
    ]


__all__ = ["DEFAULT_MAX_INPUT_SIZE", "HTTP_OPTIONS", "create_frontend", "tritium_register_frontends"]
