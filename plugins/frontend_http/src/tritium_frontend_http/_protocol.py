"""The connection handler: aiohttp's, with small inference requests answered on the spot.

aiohttp's low-level server runs one task per connection that takes each parsed request from a queue, wraps it
in a request object, runs the handler in a new task, then formats and writes a response object. For a small
``/infer`` request on a fast model that machinery costs more than decoding, running and encoding the
inference. :class:`InferenceRequestHandler` looks at what the parser produced before aiohttp's task does: a
keep-alive HTTP/1.1 ``POST .../infer`` whose whole body has arrived, without content coding, is answered
right there in ``data_received`` (:meth:`HttpApp.infer_eager`), its response written straight to the
transport, with the headers aiohttp would write. When the data plane cannot answer synchronously (a model on
worker threads, a queue), the answer is finished in a task, and later requests of the connection wait for it.

Everything else goes to aiohttp unchanged and in order: other endpoints, streaming or chunked bodies,
``Connection: close``, upgrades, parse errors, and every request that arrives while aiohttp's task is busy
with an earlier one of the same connection. The handler relies on a few internals of aiohttp's
``RequestHandler`` (its message queue and the future its task waits on): this module is the one place that
touches aiohttp's internals. The fast path runs only on the aiohttp versions it is tested with
(:data:`SUPPORTED_AIOHTTP`, the range ``pyproject.toml`` declares) and when those internals are present; otherwise,
or with ``TRITIUM_HTTP_PLAIN=1`` in the environment (CI runs the HTTP tests both ways), the server uses aiohttp's
own handler and answers everything the ordinary way.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import time
from collections.abc import Awaitable
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.web_protocol import RequestHandler

from tritium_frontend_http._app import StartedAnswer

logger = logging.getLogger("tritium.frontend.http")

if TYPE_CHECKING:
    from tritium_frontend_http._app import Answer, HttpApp

_HEAD_CACHE_SIZE = 256
_REQUIRED_INTERNALS = (
    "_waiter",
    "_messages",
    "_request_in_progress",
    "_handler_waiter",
    "_keepalive_handle",
    "_next_keepalive_close_time",
    "_keepalive_timeout",
    "_parser",
    "_manager",
    "_force_close",
    "_close",
)


SUPPORTED_AIOHTTP = ((3, 9), (3, 15))
"""The aiohttp versions the fast path is tested with: from 3.9 up to, not including, 3.15 (as declared in
``pyproject.toml``). Another version gets the plain path."""
PLAIN_PATH_ENV = "TRITIUM_HTTP_PLAIN"
"""Set to 1 to serve every request through aiohttp's own handler (the plain path)."""


def aiohttp_version() -> tuple[int, int]:
    """The installed aiohttp's (major, minor)."""
    major, minor = [*aiohttp.__version__.split("."), "0"][:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def fast_path_supported() -> bool:
    """Whether the fast path runs here: not switched off, a tested aiohttp, and its ``RequestHandler`` has the
    internals the fast path relies on."""
    if os.environ.get(PLAIN_PATH_ENV, "") not in ("", "0"):
        return False
    low, high = SUPPORTED_AIOHTTP
    if not low <= aiohttp_version() < high:
        return False
    slots: set[str] = set()
    for cls in RequestHandler.__mro__:
        slots.update(getattr(cls, "__slots__", ()))
    return all(name in slots for name in _REQUIRED_INTERNALS) and hasattr(RequestHandler, "_process_keepalive")


class InferenceServer(web.Server):
    """aiohttp's low-level server whose connections are :class:`InferenceRequestHandler`\\ s."""

    def __init__(self, app: HttpApp, **kwargs: Any) -> None:
        super().__init__(app.handle, **kwargs)
        self.app = app
        self.fast_path = fast_path_supported()
        self._tail_second = -1
        self._tail = b""
        self._heads: dict[tuple[Any, ...], bytes] = {}
        self._outbox: list[tuple[asyncio.Transport, bytes]] = []

    def __call__(self) -> RequestHandler:
        if not self.fast_path:
            return super().__call__()
        return InferenceRequestHandler(self, loop=self._loop, **self._kwargs)

    def send(self, transport: asyncio.Transport, data: bytes) -> None:
        """Write ``data`` once the callbacks of this event loop iteration ran (other connections' requests
        that arrived with this one), together with their answers.

        Answers go out in a burst, as aiohttp's tasks write them: a client woken by the first finds the
        next ones waiting, instead of every send waking a client that went back to sleep meanwhile. The
        last callback of an iteration (a lone request) writes at once: nothing to wait for.
        """
        outbox = self._outbox
        if getattr(self._loop, "_ready", None):  # asyncio's queue of callbacks still to run
            if not outbox:
                self._loop.call_soon(self._flush)
            outbox.append((transport, data))
            return
        if outbox:
            self._flush()
        transport.write(data)

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for transport, data in outbox:
            if not transport.is_closing():
                try:
                    transport.write(data)
                except Exception:  # one broken connection must not cost the others their answers
                    logger.debug("writing an answer failed", exc_info=True)

    def head(self, status: int, headers: dict[str, str]) -> bytes:
        """The status line and headers up to ``Content-Length: `` (whose value the caller appends)."""
        key = (status, *headers.items())
        head = self._heads.get(key)
        if head is None:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
            lines = [f"HTTP/1.1 {status} {reason}\r\n"]
            lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
            lines.append("Content-Length: ")
            head = "".join(lines).encode("latin-1")
            if len(self._heads) >= _HEAD_CACHE_SIZE:
                self._heads.clear()
            self._heads[key] = head
        return head

    def tail(self) -> bytes:
        """The end of the headers: ``Date`` (RFC 7231, formatted once per second) and ``Server``, as aiohttp
        writes them."""
        now = int(time.time())
        if now != self._tail_second:
            self._tail_second = now
            date = email.utils.formatdate(now, usegmt=True)
            self._tail = f"\r\nDate: {date}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode("latin-1")
        return self._tail


class InferenceRequestHandler(RequestHandler):
    """One connection: aiohttp's handler, with eligible ``/infer`` requests answered in ``data_received``."""

    __slots__ = ("_pending", "_server")

    def __init__(self, manager: InferenceServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._pending: asyncio.Task[None] | None = None  # a fast request still waiting for its answer

    # ------------------------------------------------------------------------------------- receiving
    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if self._pending is None and (waiter is None or waiter.done() or self._messages):
            super().data_received(data)  # aiohttp's task is busy with a request: it keeps the order
            return
        # aiohttp's task waits for a request (or we answer one): see what arrived before it does.
        self._waiter = None
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        self._serve_queued()

    def _serve_queued(self) -> None:
        """Answer the eligible requests at the head of the queue; wake aiohttp's task for the rest."""
        messages = self._messages
        served = False
        while messages and self._pending is None and not (self._force_close or self._close):
            message, payload = messages[0]
            target = self._eligible(message, payload)
            if target is None:
                break
            messages.popleft()
            served = True
            parser = self._parser
            if parser is not None and hasattr(parser, "message_consumed"):
                parser.message_consumed()
            self._serve(message, payload, *target)
        if served and getattr(self, "_buffer_paused", False):
            resume = getattr(self, "_resume_reading_if_drained", None)
            if resume is not None and len(messages) <= getattr(self, "_msg_queue_resume_size", 0):
                resume()
        if messages and self._pending is None:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _eligible(self, message: Any, payload: Any) -> tuple[str, str] | None:
        """(model, version) when this parsed request is answered here, else None (aiohttp answers it)."""
        if (
            getattr(message, "method", None) != "POST"
            or message.should_close
            or message.upgrade
            or message.chunked
            or message.version != HttpVersion11
            or not payload.is_eof()
            or self.writing_paused  # the client does not read: aiohttp's writer applies backpressure
        ):
            return None
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        headers = message.headers
        if "Content-Encoding" in headers or "Expect" in headers:
            return None
        path = message.path
        if "?" in path or "%" in path or "#" in path:
            return None
        app = self._server.app
        if payload.total_bytes > app.settings.max_input_size:
            return None
        return app.infer_target(path)

    # ------------------------------------------------------------------------------------- answering
    def _serve(self, message: Any, payload: Any, model: str, version: str) -> None:
        body = payload.read_nowait()
        server = self._server
        server.requests_count += 1
        answer = server.app.infer_eager(message.headers, message.raw_headers, "POST", body, model, version)
        if type(answer) is StartedAnswer:
            completion = answer.completion
            if completion.done():  # ended already (refused by its instance): answer it as a synchronous one
                answer = answer.answer()
            else:
                self._request_in_progress = True
                self._pending = completion
                completion.when_settled(partial(self._answer_started, answer))
                return
        if type(answer) is tuple:
            self._write(answer)
            return
        self._request_in_progress = True
        self._pending = self._loop.create_task(self._serve_later(answer))  # type: ignore[arg-type]

    async def _serve_later(self, pending: Awaitable[Answer]) -> None:
        try:
            self._write(await pending)
        finally:
            self._request_done()
        if self.transport is not None:
            self._serve_queued()

    def _answer_started(self, started: StartedAnswer, completion: Any) -> None:
        """The started inference in progress ended (a listener of its completion): answer it, then the
        requests queued behind it."""
        if completion.cancelled():  # the connection was lost, and aiohttp cancels its handlers then
            self._request_done()
            return
        answer = started.answer()
        if type(answer) is not tuple:
            self._pending = self._loop.create_task(self._serve_later(answer))  # type: ignore[arg-type]
            return
        try:
            self._write(answer)
        finally:
            self._request_done()
        if self.transport is not None:
            self._serve_queued()

    def _request_done(self) -> None:
        self._pending = None
        self._request_in_progress = False
        waiter = self._handler_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # shutdown() waits for the request in progress (after its answer)

    def _write(self, answer: Answer) -> None:
        transport = self.transport
        if transport is None:
            return
        status, headers, payload = answer
        server = self._server
        head = server.head(status, headers)
        server.send(transport, b"".join((head, b"%d" % len(payload), server.tail(), payload)))
        loop = self._loop
        close_time = loop.time() + self._keepalive_timeout
        self._next_keepalive_close_time = close_time
        if self._keepalive_handle is None and self._keepalive_timeout > 0:
            self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)

    # ------------------------------------------------------------------------------------- lifecycle
    def _process_keepalive(self) -> None:
        if self._pending is not None:  # busy answering, not idle: look again after another timeout
            self._keepalive_handle = self._loop.call_at(
                self._loop.time() + self._keepalive_timeout, self._process_keepalive
            )
            return
        super()._process_keepalive()

    def connection_lost(self, exc: BaseException | None) -> None:
        pending = self._pending
        cancel = self._manager is not None and self._manager.handler_cancellation
        super().connection_lost(exc)
        if pending is not None and cancel:
            pending.cancel()
