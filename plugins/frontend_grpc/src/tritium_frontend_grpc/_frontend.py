"""The gRPC frontend: a grpc.aio server serving :class:`~tritium_frontend_grpc._servicer.GrpcServicer`.

It owns the listener (address, port, TLS or mutual TLS, keepalive and message-size channel arguments) and
adds the health service and server reflection next to ``inference.GRPCInferenceService``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from tritium import ConfigError, Frontend, InferenceService
from tritium_frontend_grpc._options import INT32_MAX, GrpcSettings
from tritium_frontend_grpc._servicer import HEALTH_SERVICE_NAME, SERVICE_NAME, GrpcServicer

_log = logging.getLogger("tritium.frontend.grpc")

STOP_GRACE_SECONDS = 30.0
"""How long :meth:`GrpcFrontend.stop` waits for calls in flight before cancelling them."""


def channel_options(settings: GrpcSettings) -> list[tuple[str, Any]]:
    """The server's channel arguments: Triton's (send size INT32_MAX, keepalive flags) and the receive size
    limit of --grpc-max-message-size."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", settings.max_message_size),
        ("grpc.max_send_message_length", INT32_MAX),
        ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1 if settings.keepalive_permit_without_calls else 0),
        ("grpc.http2.max_pings_without_data", settings.http2_max_pings_without_data),
        ("grpc.http2.min_ping_interval_without_data_ms", settings.http2_min_recv_ping_interval_without_data_ms),
        ("grpc.http2.max_ping_strikes", settings.http2_max_ping_strikes),
    ]
    if settings.max_connection_age_ms:
        options.append(("grpc.max_connection_age_ms", settings.max_connection_age_ms))
    if settings.max_connection_age_grace_ms:
        options.append(("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace_ms))
    return options


def _read_pem(path: str, what: str) -> bytes:
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} '{path}': {exc.strerror}") from None


def server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials:
    """TLS credentials from the PEM files (mutual TLS requires and verifies client certificates)."""
    cert = _read_pem(settings.server_cert, "--grpc-server-cert")
    key = _read_pem(settings.server_key, "--grpc-server-key")
    root = _read_pem(settings.root_cert, "--grpc-root-cert")
    if not cert or not key:
        raise ConfigError("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key")
    if settings.use_ssl_mutual and not root:
        raise ConfigError("--grpc-use-ssl-mutual needs --grpc-root-cert")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=root or None, require_client_auth=settings.use_ssl_mutual
    )


def reflection_pool() -> Any:
    """A descriptor pool with every file the server exposes, for the reflection service.

    Our files live in ``tritium.proto.POOL`` and the health and reflection files in protobuf's default
    pool; reflection answers from one pool, so it gets its own copy of all of them.
    """
    from google.protobuf import descriptor_pool
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    from tritium_frontend_grpc.proto import grpc_service_pb2

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for file in (grpc_service_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        add(file)
    return pool


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


class GrpcFrontend(Frontend):
    """Serves KServe v2 gRPC with Triton's extensions on one address and port."""

    def __init__(self, service: InferenceService, settings: GrpcSettings) -> None:
        self._service = service
        self.settings = settings
        self._servicer = GrpcServicer(service, settings)
        self._server: Any = None
        """The grpc.aio server or the native transport's server (both stop with ``stop(grace)``)."""
        self.port = settings.port
        """The bound port (the OS-chosen one when the option is 0), known after :meth:`start`."""

    async def start(self) -> None:
        if self._server is not None:
            return  # already serving
        if self.settings.transport == "native":
            await self._start_native()
        else:
            await self._start_grpcio()
        self._servicer.accepting = True
        _log.info("Started GRPCInferenceService at %s:%d", self.settings.address, self.port)

    async def _start_grpcio(self) -> None:
        from grpc_reflection.v1alpha import reflection

        settings = self.settings
        credentials = server_credentials(settings) if settings.use_ssl else None
        server = grpc.aio.server(options=channel_options(settings))
        server.add_generic_rpc_handlers(self._servicer.generic_handlers())
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server, pool=reflection_pool()
        )
        address = f"{_host(settings.address)}:{settings.port}"
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(f"Socket '{address}' already in use ")
        await server.start()
        self._server = server
        self.port = port

    async def _start_native(self) -> None:
        from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
        from grpc_reflection.v1alpha._async import ReflectionServicer

        from tritium_frontend_grpc._native import NativeServer, listening_socket, tls_context

        settings = self.settings
        context = None
        if settings.use_ssl:
            server_credentials(settings)  # the same checks and messages as the grpcio transport
            try:
                context = tls_context(settings)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot use the gRPC TLS certificate or key: {exc}") from None
        server = NativeServer(settings)
        server.add_generic_rpc_handlers(self._servicer.generic_handlers())
        server.add_eager_unary(f"/{SERVICE_NAME}/ModelInfer", self._servicer.model_infer_now)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            ReflectionServicer((SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), pool=reflection_pool()),
            server,
        )
        address = f"{_host(settings.address)}:{settings.port}"
        try:
            sock = listening_socket(settings.address, settings.port, settings.reuse_port)
        except OSError:
            raise OSError(f"Socket '{address}' already in use ") from None
        await server.start(sock, context)
        self._server = server
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._servicer.stop_streams()
        await server.stop(STOP_GRACE_SECONDS)

    def describe(self) -> str:
        scheme = "gRPC+TLS" if self.settings.use_ssl else "gRPC"
        return f"{scheme} on {self.settings.address}:{self.port}"


def create_frontend(service: InferenceService, options: Any) -> GrpcFrontend:
    """The factory named by the plugin's FrontendSpec: validate the options, build the frontend."""
    return GrpcFrontend(service, GrpcSettings.from_options(options))
