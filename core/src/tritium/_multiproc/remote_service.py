"""The data plane as a worker's frontends see it: an :class:`InferenceService` whose models live in the executor.

Inference and model control travel over the data connection (tensors through the arenas); synchronous calls
(readiness, statistics, settings) over the control connection, answered in place. What a frontend asks on
every request (is the model decoupled, its configuration) is cached per worker and dropped whenever the
executor says the loaded models changed. While the executor is away (crashed, restarting) the server is not
ready, requests in flight fail with UNAVAILABLE instead of hanging, new requests are refused the same way, and
the connection is made again as soon as the executor is back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritium._base.completion import Completion
from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._multiproc.arena import ArenaReader, ArenaWriter
from tritium._multiproc.busy_poll import BusyPoll
from tritium._multiproc.channel import BlockingChannel, Channel
from tritium._multiproc.handshake import HELLO_TIMEOUT_S, SOCKET_NAME, receive_hello, send_hello
from tritium._multiproc.local_models import ForwardBuffer
from tritium._multiproc.wire import decode_error, decode_response, encode_request, release_unused
from tritium._runtime.service import InferenceService, ServiceCapability
from tritium._runtime.settings import LogSettings

if TYPE_CHECKING:
    from tritium._multiproc.local_models import LocalModels
    from tritium._runtime.dataplane import DataPlane
    from tritium._runtime.shm import SharedMemoryRegistry
    from tritium.config import ModelConfig

_log = logging.getLogger("tritium.worker")

EXECUTOR_AWAY = "the model executor is not available (it is restarting); try again"
CONTROL_TIMEOUT_S = 10.0
"""How long a synchronous call (readiness, statistics, settings) may wait for the executor; it blocks the
worker's event loop meanwhile, so an executor that does not answer in time is treated as gone."""
RECONNECT_INTERVAL_S = 0.05


class _Connection:
    """One live pair of connections to the executor, with its arenas."""

    def __init__(
        self,
        channel: Channel,
        control: BlockingChannel,
        request_arena: ArenaWriter,
        response_arena: ArenaReader,
        capabilities: frozenset[ServiceCapability],
        metadata: dict[str, Any],
    ) -> None:
        self.channel = channel
        self.control = control
        self.request_arena = request_arena
        self.response_arena = response_arena
        self.capabilities = capabilities
        self.metadata = metadata
        self.lost = asyncio.Event()


class RemoteService(InferenceService):
    """A worker's service: every call answered by the executor's data plane."""

    def __init__(
        self,
        run_dir: Path,
        worker_index: int,
        registry: SharedMemoryRegistry,
        arena_size: int,
        busy_poll: BusyPoll | None = None,
    ) -> None:
        self.path = run_dir / SOCKET_NAME
        self._busy_poll = busy_poll
        self.worker_index = worker_index
        self._registry = registry
        self.arena_size = arena_size
        self._conn: _Connection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, Any] = {}
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._live = False
        self._stopping = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._maintainer: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._capabilities: frozenset[ServiceCapability] = frozenset()
        self._metadata: dict[str, Any] = {}
        self._forwarded = ForwardBuffer(self._send_forwarded)
        self.local: LocalModels | None = None
        """This worker's copies of the models that run in the workers (set before :meth:`start`)."""

    # -------------------------------------------------------------------------------- connection
    async def start(self) -> None:
        """Connect (waiting for the executor to be up) and keep reconnecting whenever it goes away."""
        self._forwarded.bind(asyncio.get_running_loop())
        await self._connect_until_up()
        self._maintainer = asyncio.ensure_future(self._maintain())

    async def _maintain(self) -> None:
        while True:
            conn = self._conn
            if conn is not None:
                await conn.lost.wait()
            if self._stopping:
                return
            await self._connect_until_up()

    async def _connect_until_up(self) -> None:
        while not self._stopping:
            try:
                self._conn = await self._connect()
            except (OSError, ConnectionError, ValueError) as exc:
                _log.debug("executor not reachable yet: %r", exc)
                await asyncio.sleep(RECONNECT_INTERVAL_S)
                continue
            self._capabilities = self._conn.capabilities
            self._metadata = self._conn.metadata
            self._cache.clear()
            self.connected.set()
            if self.local is not None:
                self.local.changed(self._worker_models)
            return

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        request_arena = ArenaWriter(self.arena_size)
        data_sock = control_sock = None
        try:
            data_sock, welcome, fds = await asyncio.to_thread(
                self._open, ("hello", "data", self.worker_index, self.arena_size), [request_arena.fd]
            )
            request_arena.close()
            control_sock, _, _ = await asyncio.to_thread(
                self._open, ("hello", "control", self.worker_index, 0), []
            )
        except BaseException:
            request_arena.close()
            for sock in (data_sock, control_sock):
                if sock is not None:
                    sock.close()
            raise
        _, capabilities, metadata, response_size, log_settings = welcome
        LogSettings.from_dict(log_settings).apply(handler_only=True)
        response_arena = ArenaReader(fds[0], response_size)
        control = BlockingChannel(control_sock)
        holder: list[_Connection] = []
        channel = Channel(self._on_messages, lambda exc: self._on_lost(holder[0], exc), self._busy_poll)
        conn = _Connection(
            channel,
            control,
            request_arena,
            response_arena,
            frozenset(ServiceCapability(c) for c in capabilities),
            metadata,
        )
        holder.append(conn)
        data_sock.setblocking(False)
        await loop.connect_accepted_socket(lambda: channel, data_sock)
        return conn

    def _open(self, hello: tuple[Any, ...], fds: list[int]) -> tuple[socket.socket, Any, list[int]]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(HELLO_TIMEOUT_S)
            sock.connect(str(self.path))
            send_hello(sock, hello, fds)
            welcome, got = receive_hello(sock)
        except BaseException:
            sock.close()
            raise
        if not (isinstance(welcome, tuple) and welcome[:1] == ("welcome",)):
            sock.close()
            raise ConnectionError(f"unexpected answer {welcome!r}")
        sock.settimeout(None)
        return sock, welcome, got

    def _on_lost(self, conn: _Connection, exc: BaseException | None) -> None:
        if self._conn is conn:
            self._conn = None
            self.connected.clear()
        conn.control.close()
        conn.lost.set()
        pending, self._pending = self._pending, {}
        error = TritiumError.unavailable(EXECUTOR_AWAY)
        for waiter in pending.values():
            if isinstance(waiter, asyncio.Queue):
                waiter.put_nowait(("err", error))
            elif not waiter.done():
                waiter.set_exception(error)
        if not self._stopping:
            _log.warning("lost the connection to the model executor; requests in flight failed, reconnecting")

    def _on_messages(self, messages: list[Any]) -> None:
        conn = self._conn
        arena = conn.response_arena if conn is not None else None
        for message in messages:
            kind = message[0]
            if kind == "models_changed":
                self._cache.clear()
                if self.local is not None:
                    self.local.changed(self._worker_models)
                continue
            if kind == "log_settings":
                LogSettings.from_dict(message[1]).apply(handler_only=True)
                continue
            waiter = self._pending.get(message[1])
            if waiter is None:
                if kind in ("ok", "item"):
                    release_unused(message[2][3], arena)
                continue
            if isinstance(waiter, asyncio.Queue):
                if kind == "item":
                    waiter.put_nowait(("item", decode_response(message[2], arena)))
                elif kind == "end":
                    del self._pending[message[1]]
                    waiter.put_nowait(("end", None))
                else:
                    del self._pending[message[1]]
                    waiter.put_nowait(("err", decode_error(message[2])))
                continue
            del self._pending[message[1]]
            if waiter.done():
                if kind == "ok":
                    release_unused(message[2][3], arena)
            elif kind == "ok":
                waiter.set_result(decode_response(message[2], arena))
            elif kind == "ret":
                waiter.set_result(message[2])
            else:
                waiter.set_exception(decode_error(message[2]))

    def forward(self, message: Any) -> None:
        """Queue a message that needs no answer (statistics and events of the local copies): it leaves with
        the others of its interval (see :class:`ForwardBuffer`); dropped while the executor is away."""
        self._forwarded.add(message)

    def _send_forwarded(self, messages: list[Any]) -> None:
        conn = self._conn
        if conn is not None:
            conn.channel.send(("forwarded", messages))

    def _worker_models(self) -> dict[str, str]:
        result: dict[str, str] = self._call("worker_models")
        return result

    def _local(self, model_name: str) -> DataPlane | None:
        local = self.local
        if local is None or model_name not in local.active:
            return None
        return local.service

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is None or conn.channel.closed:
            raise TritiumError.unavailable(EXECUTOR_AWAY)
        return conn

    # ---------------------------------------------------------------------------- lifecycle state
    def mark_live(self) -> None:
        self._live = True

    def begin_shutdown(self) -> None:
        self._stopping = True

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def close(self) -> None:
        self._stopping = True
        if self._maintainer is not None:
            self._maintainer.cancel()
        self._forwarded.flush()
        conn = self._conn
        if conn is not None:
            conn.channel.close()
            conn.control.close()

    # ------------------------------------------------------------------------------- sync calls
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        conn = self._connection()
        # What this worker's copies recorded leaves first (this call blocks the loop): statistics read
        # through this worker count every request it has answered.
        self._forwarded.flush()
        conn.channel.flush()
        try:
            answer = conn.control.call(("call", 0, method, args, kwargs), CONTROL_TIMEOUT_S)
        except (OSError, ConnectionError, EOFError):
            # Closed, or no answer in time (a late answer would be taken for the next call's): this
            # connection is done; requests on it fail and the worker connects again.
            conn.channel.abort()
            raise TritiumError.unavailable(EXECUTOR_AWAY) from None
        if answer[0] == "ret":
            return answer[2]
        raise decode_error(answer[2])

    def _cached(self, method: str, name: str, version: str) -> Any:
        key = (method, name, version)
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = self._call(method, name, version)
        self._cache[key] = value
        return value

    async def _call_async(self, method: str, *args: Any, **kwargs: Any) -> Any:
        conn = self._connection()
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        conn.channel.send(("call", rid, method, args, kwargs))
        try:
            return await future
        except asyncio.CancelledError:
            if self._pending.pop(rid, None) is not None:
                conn.channel.send(("cancel", rid))
            raise

    # ------------------------------------------------------------------------------- the service
    @property
    def capabilities(self) -> frozenset[ServiceCapability]:
        return self._capabilities

    def server_live(self) -> bool:
        return self._live and not self._stopping

    @property
    def stopping(self) -> bool:
        return self._stopping

    def server_ready(self) -> bool:
        if not self._live or self._stopping:
            return False
        try:
            return bool(self._call("server_ready"))
        except TritiumError:
            return False

    def model_ready(self, name: str, version: str = "") -> bool:
        if self._stopping:
            return False
        try:
            return bool(self._call("model_ready", name, version))
        except TritiumError:
            return False

    def server_metadata(self) -> dict[str, Any]:
        if not self._metadata:
            raise TritiumError.unavailable(EXECUTOR_AWAY)
        return dict(self._metadata)

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._cached("model_metadata", name, version)
        return result

    def model_config(self, name: str, version: str = "") -> ModelConfig:
        return self._cached("model_config", name, version)  # type: ignore[no-any-return]

    def is_decoupled(self, name: str, version: str = "") -> bool:
        return bool(self._cached("is_decoupled", name, version))

    def _enter(self) -> None:
        if self._stopping:
            raise TritiumError.unavailable("Server is stopping: no new requests are accepted")
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    def infer_nowait(self, request: InferenceRequest) -> InferenceResponse | Awaitable[InferenceResponse]:
        local = self._local(request.model_name)
        if local is None:
            return self.infer(request)
        self._enter()
        try:
            result = local.infer_nowait(request)
        except BaseException:
            self._leave()
            raise
        if isinstance(result, InferenceResponse):
            self._leave()
            return result
        if isinstance(result, Completion):  # started at once: no task, the copy's loop settles it
            result.when_settled(self._settled)
            return result
        return self._finish(result)

    def _settled(self, _completion: Any) -> None:
        self._leave()

    async def _finish(self, pending: Awaitable[InferenceResponse]) -> InferenceResponse:
        try:
            return await pending
        finally:
            self._leave()

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        self._enter()
        try:
            local = self._local(request.model_name)
            if local is not None:
                return await local.infer(request)
            conn = self._connection()
            rid = next(self._ids)
            future: asyncio.Future[InferenceResponse] = asyncio.get_running_loop().create_future()
            self._pending[rid] = future
            conn.channel.send(("infer", rid, encode_request(request, conn.request_arena)))
            try:
                return await future
            except asyncio.CancelledError:
                if self._pending.pop(rid, None) is not None:
                    conn.channel.send(("cancel", rid))
                raise
        finally:
            self._leave()

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        self._enter()
        rid = 0
        conn: _Connection | None = None
        try:
            local = self._local(request.model_name)
            if local is not None:
                async for response in local.infer_stream(request):
                    yield response
                return
            conn = self._connection()
            rid = next(self._ids)
            queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            self._pending[rid] = queue
            conn.channel.send(("stream", rid, encode_request(request, conn.request_arena)))
            while True:
                kind, payload = await queue.get()
                if kind == "item":
                    yield payload
                elif kind == "end":
                    return
                else:
                    raise payload
        finally:
            if rid and self._pending.pop(rid, None) is not None and conn is not None:
                conn.channel.send(("cancel", rid))
            self._leave()

    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._call("statistics", name, version)
        return result

    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("repository_index", repository, ready_only)
        return result

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        await self._call_async("load_model", name, config=config, files=dict(files) if files else None)
        self._cache.clear()

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        await self._call_async("unload_model", name, unload_dependents=unload_dependents)
        self._cache.clear()

    def log_settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("log_settings")
        return result

    def update_log_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("update_log_settings", dict(settings))
        return result

    def trace_settings(self, model: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._call("trace_settings", model)
        return result

    def update_trace_settings(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._call("update_trace_settings", dict(settings), model)
        return result

    @property
    def shared_memory(self) -> SharedMemoryRegistry:
        return self._registry
