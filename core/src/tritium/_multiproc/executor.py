"""The executor's side: serves the workers' requests on the one data plane that owns every model.

The executor is a :class:`tritium.Server` that starts no frontend (metrics sinks run here, where every event
happens, so ``/metrics`` and the statistics are one answer for all workers). :class:`ExecutorBridge` listens on
a Unix socket in the server's private run directory and gives every worker connection a
:class:`WorkerSession`, which turns messages into data plane calls and the results back into messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tritium._base.completion import Completion
from tritium._base.errors import TritiumError
from tritium._base.events import Event, ModelLoaded, ModelUnloaded
from tritium._base.tensors import InferenceResponse
from tritium._multiproc.arena import ArenaReader, ArenaWriter
from tritium._multiproc.busy_poll import BusyPoll
from tritium._multiproc.channel import Channel
from tritium._multiproc.handshake import HELLO_TIMEOUT_S, SOCKET_NAME, receive_hello, send_hello
from tritium._multiproc.local_models import STAT_METHODS, worker_models
from tritium._multiproc.wire import decode_request, encode_error, encode_response
from tritium._runtime.dataplane import DataPlane

_log = logging.getLogger("tritium.executor")

SYNC_CALLS = frozenset(
    {
        "server_ready",
        "model_ready",
        "server_metadata",
        "model_metadata",
        "model_config",
        "is_decoupled",
        "statistics",
        "repository_index",
        "log_settings",
        "update_log_settings",
        "trace_settings",
        "update_trace_settings",
    }
)
"""Service methods a worker may call and that answer at once."""
ASYNC_CALLS = frozenset({"load_model", "unload_model"})
"""Service methods a worker may call that wait (model control)."""


class WorkerSession:
    """One worker connection: requests in, responses out, each request a data plane call."""

    def __init__(
        self,
        service: DataPlane,
        request_arena: ArenaReader | None,
        response_arena: ArenaWriter | None,
        on_closed: Callable[[WorkerSession], None],
        on_control: Callable[[str, tuple[Any, ...], dict[str, Any]], None] = lambda *_: None,
        emit: Callable[[Event], None] = lambda event: None,
        busy_poll: BusyPoll | None = None,
    ) -> None:
        self.service = service
        self._on_control = on_control
        self._emit = emit
        self.request_arena = request_arena
        self.response_arena = response_arena
        self._on_closed = on_closed
        self.channel = Channel(self._on_messages, self._on_lost, busy_poll)
        self._tasks: dict[int, asyncio.Future[Any]] = {}

    # ---------------------------------------------------------------------------------- dispatch
    def _on_messages(self, messages: list[Any]) -> None:
        for message in messages:
            kind = message[0]
            if kind == "infer":
                self._infer(message[1], message[2])
            elif kind == "cancel":
                task = self._tasks.pop(message[1], None)
                if task is not None:
                    task.cancel()
            elif kind == "stream":
                self._track(message[1], asyncio.ensure_future(self._stream(message[1], message[2])))
            elif kind == "call":
                self._call(message[1], message[2], message[3], message[4])
            elif kind == "forwarded":
                self._forwarded(message[1])

    def _forwarded(self, notices: list[Any]) -> None:
        """What a worker's copies of the models recorded (see :class:`ForwardBuffer`)."""
        for notice in notices:
            if notice[0] == "stat":
                self._stat(notice[1], notice[2], notice[3], notice[4], notice[5])
            elif notice[0] == "event":
                self._emit(notice[1])

    def _stat(self, name: str, version: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A statistics update of a worker's copy of a model, applied to the executor's statistics of it."""
        if method not in STAT_METHODS:
            return
        try:
            statistics = self.service.models.runtime(name, int(version)).pool.statistics
        except (TritiumError, ValueError):
            return  # unloaded meanwhile
        getattr(statistics, method)(*args, **kwargs)

    def _track(self, rid: int, task: asyncio.Future[Any]) -> None:
        self._tasks[rid] = task
        task.add_done_callback(partial(self._forget, rid))

    def _forget(self, rid: int, task: asyncio.Future[Any]) -> None:
        if self._tasks.get(rid) is task:
            del self._tasks[rid]

    def _infer(self, rid: int, item: tuple[Any, ...]) -> None:
        try:
            request = decode_request(item, self.request_arena)
            result = self.service.infer_nowait(request)
        except Exception as exc:
            self.channel.send(("err", rid, encode_error(exc)))
            return
        if isinstance(result, InferenceResponse):
            self._answer(rid, result)
            return
        if isinstance(result, Completion):  # started at once: answered as it ends, no task, no loop turn
            self._tasks[rid] = result
            result.when_settled(partial(self._infer_done, rid))
            return
        task = asyncio.ensure_future(result)
        self._tasks[rid] = task
        task.add_done_callback(partial(self._infer_done, rid))

    def _infer_done(self, rid: int, task: asyncio.Future[Any]) -> None:
        if self._tasks.pop(rid, None) is None or task.cancelled():
            return  # the worker gave the request up: nobody waits for an answer
        error = task.exception()
        if error is not None:
            self.channel.send(("err", rid, encode_error(error)))
        else:
            self._answer(rid, task.result())

    def _answer(self, rid: int, response: InferenceResponse) -> None:
        try:
            self.channel.send(("ok", rid, encode_response(response, self.response_arena)))
        except Exception as exc:
            self.channel.send(("err", rid, encode_error(exc)))

    async def _stream(self, rid: int, item: tuple[Any, ...]) -> None:
        try:
            request = decode_request(item, self.request_arena)
            async for response in self.service.infer_stream(request):
                self.channel.send(("item", rid, encode_response(response, self.response_arena)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.channel.send(("err", rid, encode_error(exc)))
        else:
            self.channel.send(("end", rid))

    def _call(self, rid: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if method == "worker_models":
            self.channel.send(("ret", rid, worker_models(self.service)))
        elif method in SYNC_CALLS:
            try:
                value = getattr(self.service, method)(*args, **kwargs)
            except Exception as exc:
                self.channel.send(("err", rid, encode_error(exc)))
            else:
                self._on_control(method, args, kwargs)  # its notices leave before the answer does
                self.channel.send(("ret", rid, value))
        elif method in ASYNC_CALLS:
            self._track(rid, asyncio.ensure_future(self._call_async(rid, method, args, kwargs)))
        else:
            self.channel.send(("err", rid, encode_error(TritiumError.internal(f"unknown call '{method}'"))))

    async def _call_async(self, rid: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            value = await getattr(self.service, method)(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.channel.send(("err", rid, encode_error(exc)))
        else:
            self._on_control(method, args, kwargs)
            self.channel.send(("ret", rid, value))

    def notify(self, message: Any) -> None:
        self.channel.send(message)

    # -------------------------------------------------------------------------------------- close
    def _on_lost(self, exc: BaseException | None) -> None:
        # The worker is gone (exited or crashed): its requests are abandoned, like a client disconnecting.
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()
        self._on_closed(self)

    @property
    def pending(self) -> int:
        return len(self._tasks)


CONTROL_LOG_NAME = "model-control.pickle"
LOG_SETTINGS_NAME = "log-settings.pickle"


class ControlLog:
    """The models loaded and unloaded and the log settings changed through the API, in the run directory, so
    that an executor started again after a crash serves the same models, and logs as, the one that died (not
    just the startup set).

    Only the last operation per model is kept (with its config and file overrides), in the order made; log
    settings are kept as one merged set."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(operation, model, keyword arguments)`` in order; empty when nothing was changed yet."""
        try:
            with open(self.path, "rb") as file:
                entries: list[tuple[str, str, dict[str, Any]]] = pickle.load(file)
        except FileNotFoundError:
            return []
        return entries

    @property
    def _log_settings_path(self) -> Path:
        return self.path.with_name(LOG_SETTINGS_NAME)

    def log_settings(self) -> dict[str, Any]:
        """The log settings changed through the API so far (merged; empty when none was)."""
        try:
            with open(self._log_settings_path, "rb") as file:
                settings: dict[str, Any] = pickle.load(file)
        except FileNotFoundError:
            return {}
        return settings

    def record(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if method == "update_log_settings" and args:
            _replace_pickle(self._log_settings_path, {**self.log_settings(), **dict(args[0])})
            return
        if method not in ("load_model", "unload_model") or not args:
            return
        name = str(args[0])
        entries = [entry for entry in self.entries() if entry[1] != name]
        entries.append((method, name, dict(kwargs)))
        _replace_pickle(self.path, entries)

    async def replay(self, service: DataPlane) -> None:
        """Repeat the recorded operations on a fresh executor; one that fails is logged and skipped."""
        settings = self.log_settings()
        if settings:
            try:
                service.update_log_settings(settings)
            except TritiumError as exc:
                _log.error("restoring the log settings after the executor restarted: %s", exc)
        for method, name, kwargs in self.entries():
            try:
                await getattr(service, method)(name, **kwargs)
            except Exception as exc:
                _log.error("restoring model '%s' after the executor restarted (%s): %s", name, method, exc)


def _replace_pickle(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` in one step (a reader never sees half a file)."""
    temporary = path.with_name(path.name + ".new")
    with open(temporary, "wb") as file:
        pickle.dump(value, file)
    os.replace(temporary, path)


class ExecutorBridge:
    """Accepts worker connections on ``<run_dir>/executor.sock`` once the models are loaded."""

    def __init__(
        self,
        service: DataPlane,
        run_dir: Path,
        arena_size: int,
        emit: Callable[[Event], None] = lambda e: None,
        busy_poll: BusyPoll | None = None,
    ) -> None:
        self.service = service
        self._emit = emit
        self._busy_poll = busy_poll
        """One for every worker's connection: the loop polls after traffic on any of them."""
        self.control_log = ControlLog(run_dir / CONTROL_LOG_NAME)
        self.path = run_dir / SOCKET_NAME
        self.arena_size = arena_size
        self.sessions: set[WorkerSession] = set()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temporary = self.path.with_name(self.path.name + ".new")
        if temporary.exists():
            temporary.unlink()
        listener.bind(str(temporary))
        os.chmod(temporary, 0o600)
        listener.listen(128)
        listener.setblocking(False)
        os.replace(temporary, self.path)  # appears, listening, in one step: workers connect once it exists
        self._listener = listener
        self._accepting = asyncio.ensure_future(self._accept_loop())

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            handshake = asyncio.ensure_future(self._serve(conn))
            self._handshakes.add(handshake)
            handshake.add_done_callback(self._handshakes.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            session = await asyncio.to_thread(self._handshake, conn)
        except Exception as exc:
            _log.warning("a worker connection failed its handshake: %r", exc)
            conn.close()
            return
        conn.setblocking(False)
        self.sessions.add(session)
        await loop.connect_accepted_socket(lambda: session.channel, conn)

    def _handshake(self, conn: socket.socket) -> WorkerSession:
        conn.settimeout(HELLO_TIMEOUT_S)
        hello, fds = receive_hello(conn)
        if not (isinstance(hello, tuple) and hello[:1] == ("hello",)):
            raise ConnectionError(f"unexpected hello {hello!r}")
        _, kind, _index, arena_size = hello
        request_arena = ArenaReader(fds[0], arena_size) if kind == "data" and fds else None
        response_arena = ArenaWriter(self.arena_size) if kind == "data" else None
        welcome = (
            "welcome",
            tuple(c.value for c in self.service.capabilities),
            self.service.server_metadata(),
            self.arena_size if response_arena is not None else 0,
            self.service.log_settings(),  # a (re)started worker logs as the server does now
        )
        send_hello(conn, welcome, [response_arena.fd] if response_arena is not None else [])
        if response_arena is not None:
            response_arena.close()  # the mapping stays; the worker holds its own descriptor now
        return WorkerSession(
            self.service,
            request_arena,
            response_arena,
            self.sessions.discard,
            self._on_control,
            self._emit,
            self._busy_poll,
        )

    def _on_control(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A worker changed the server's state through the API: model control is recorded (for an executor
        restart); new log settings go to every worker, whose own log lines must follow them too."""
        self.control_log.record(method, args, kwargs)
        if method == "update_log_settings":
            settings = self.service.log_settings()
            for session in list(self.sessions):
                if session.response_arena is not None:
                    session.notify(("log_settings", settings))
                    # Written now, before the caller's answer: once the client has its answer, every
                    # worker has the settings in its socket, even if the executor dies the next moment.
                    session.channel.flush()

    def on_event(self, event: Event) -> None:
        """Tell every worker that the set of loaded models changed (its cached metadata is stale), on its data
        connection (a control connection carries only answers to its own calls)."""
        if isinstance(event, (ModelLoaded, ModelUnloaded)):
            for session in list(self.sessions):
                if session.response_arena is not None:
                    session.notify(("models_changed",))

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.sessions)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        if self._listener is not None:
            self._listener.close()
            try:
                self.path.unlink()
            except OSError:
                pass
        for session in list(self.sessions):
            session.channel.close()
