"""The :class:`tritium.Frontend` the server starts and stops: an aiohttp low-level server on one socket."""

from __future__ import annotations

import logging

from aiohttp import web

import tritium
from tritium_frontend_http._app import HttpApp
from tritium_frontend_http._protocol import InferenceServer
from tritium_frontend_http._settings import HttpSettings
from tritium_frontend_http._tls import server_ssl_context

_log = logging.getLogger("tritium.frontend.http")


class HttpFrontend(tritium.Frontend):
    """Triton's HTTP/REST endpoint over a :class:`tritium.InferenceService`.

    The low-level aiohttp server (no router, no middlewares, no access log) keeps per-request overhead
    small, and small ``/infer`` requests are answered as soon as they are parsed (see
    :mod:`tritium_frontend_http._protocol`); request bodies are not decompressed by aiohttp (the frontend
    bounds decompression itself); a client that disconnects cancels its request.
    """

    def __init__(self, service: tritium.InferenceService, settings: HttpSettings) -> None:
        self.service = service
        self.settings = settings
        self.app = HttpApp(service, settings)
        self._runner: web.ServerRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        if self._runner is not None:
            return  # already serving: starting twice must not bind a second listener
        server = InferenceServer(
            self.app,
            handler_cancellation=True,
            auto_decompress=False,
            access_log=None,
        )
        ssl_context = server_ssl_context(self.settings.tls) if self.settings.tls is not None else None
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner,
            host=self.settings.address,
            port=self.settings.port,
            backlog=1024,
            reuse_port=self.settings.reuse_port or None,
            ssl_context=ssl_context,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise tritium.TritiumError.unavailable(
                f"Socket '{self.settings.address}:{self.settings.port}' already in use ({exc})"
            ) from exc
        self._runner, self._site = runner, site
        _log.info("Started HTTPService at %s:%d", self.settings.address, self.port)  # Triton's line

    async def stop(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        self.app.close()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._site is None or self._site._server is None:
            return self.settings.port
        sockets = getattr(self._site._server, "sockets", None) or ()
        for sock in sockets:
            return int(sock.getsockname()[1])
        return self.settings.port

    def describe(self) -> str:
        tls = self.settings.tls
        scheme = "HTTP" if tls is None else ("HTTPS (mutual TLS)" if tls.mutual else "HTTPS")
        return f"{scheme} on {self.settings.address}:{self.port}"
