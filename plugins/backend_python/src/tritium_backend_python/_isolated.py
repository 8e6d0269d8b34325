"""A model instance in a stub process of its own (the default, as in Triton).

A crash, hang or leak in model code cannot take the server down, and the model's Python code does not share
the server's GIL. A stub that exits unexpectedly is reported in the log and restarted (``initialize`` runs
again); requests of an execution it was running fail with INTERNAL. An execution that outlives
``execute-timeout-seconds`` (when set) kills the stub, fails its requests and restarts it.

Regular models are executed through ``execute_async`` on the server's event loop (see ``_pipeline.py``: no
worker thread, up to ``pipeline_depth`` executions in flight); ``execute`` (warmup, the conformance kit) and
decoupled models use the blocking exchange on the calling thread.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import tritium
from tritium import Completion, DataType, FailureReason, StatusCode, TritiumError
from tritium_backend_python._bls import BlsBridge
from tritium_backend_python._channel import ChannelClosed, ChannelTimeout
from tritium_backend_python._convert import (
    batch_to_wire,
    error_from_wire,
    outputs_from_wire,
    request_to_wire,
    results_to_outputs,
)
from tritium_backend_python._pipeline import StubLink, copy_outcome
from tritium_backend_python._stub_process import CONTINUE, Polling, StubProcess, describe_exit

_log = logging.getLogger("tritium.backend.python")


@attrs.define(frozen=True, slots=True)
class InstanceSpec:
    """Everything needed to (re)start one instance."""

    model_name: str
    label: str
    model_file: Path
    module_name: str
    decoupled: bool
    batching: bool
    args: Mapping[str, str]
    input_types: Mapping[str, DataType]
    interpreter: Path
    stub_timeout_s: float
    execute_timeout_s: float
    pipeline_depth: int = 1
    polling: Polling = attrs.field(factory=Polling)


def _failed(message: str, code: StatusCode = StatusCode.INTERNAL) -> TritiumError:
    return TritiumError(code, message, reason=FailureReason.BACKEND)


def start_stub(spec: InstanceSpec, bridge: BlsBridge) -> StubProcess:
    """A stub with the model loaded and initialized; TritiumError with the reason otherwise."""
    try:
        stub = StubProcess(interpreter=spec.interpreter, label=spec.label, bridge=bridge, polling=spec.polling)
    except OSError as exc:
        raise _failed(f"{spec.label}: cannot start the stub process with {spec.interpreter}: {exc}") from None
    timeout = spec.stub_timeout_s
    try:
        # Starting the stub and importing model.py are bounded; initialize is not (it may load large weights).
        for message, limit in ((("load", str(spec.model_file), spec.module_name, spec.decoupled), timeout),
                               (("initialize", dict(spec.args)), None)):
            reply = stub.exchange(message, limit)
            if reply[0] != "ok":
                stub.kill()
                raise _failed(f"{spec.label}: {reply[1]}")
    except ChannelClosed:
        stub.kill()
        raise _failed(
            f"{spec.label}: the stub process exited while loading the model ({stub.exit_description()}); "
            "its output is in the server log"
        ) from None
    except ChannelTimeout:
        stub.kill()
        raise _failed(
            f"{spec.label}: starting the stub and importing the model took longer than {timeout:g} s "
            "(stub-timeout-seconds)"
        ) from None
    return stub


class IsolatedInstance(tritium.ModelInstance):
    """One instance of a Python model, served by its stub process."""

    def __init__(self, spec: InstanceSpec, bridge: BlsBridge) -> None:
        self.spec = spec
        self._bridge = bridge
        self._lock = threading.Lock()
        self._closed = False
        self._closing = False
        self._executions = itertools.count(1)
        self.pipeline_depth = spec.pipeline_depth
        self._link: StubLink | None = None
        self._stub: StubProcess | None = start_stub(spec, bridge)
        self._watch(self._stub)

    # ------------------------------------------------------------------------------- supervision
    def _watch(self, stub: StubProcess) -> None:
        threading.Thread(
            target=self._supervise, args=(stub,), name=f"tritium-python-watch-{stub.pid}", daemon=True
        ).start()

    def _supervise(self, stub: StubProcess) -> None:
        """Wait for the stub to exit; an exit nobody asked for is reported and the stub restarted."""
        code = stub.process.wait()
        with self._lock:
            if self._closed or stub is not self._stub:
                return
            _log.error("%s: the stub process (pid %d) exited unexpectedly (%s); restarting it",
                       self.spec.label, stub.pid, describe_exit(code))
            stub.kill()
            self._stub = None
            self._restart()

    def _restart(self) -> None:
        """Start a new stub (with the lock held); failures are logged and retried at the next execution."""
        if self._closing:
            return
        try:
            stub = start_stub(self.spec, self._bridge)
        except TritiumError as exc:
            _log.error("%s: restarting the stub failed: %s", self.spec.label, exc)
            return
        self._stub = stub
        self._watch(stub)
        _log.info("%s: stub process restarted (pid %d)", self.spec.label, stub.pid)

    def _ready_stub(self) -> StubProcess:
        if self._closed:
            raise _failed(f"{self.spec.label} is unloaded", StatusCode.UNAVAILABLE)
        stub = self._stub
        if stub is None or not stub.alive():
            if stub is not None:
                _log.error("%s: the stub process (pid %d) is gone (%s); restarting it",
                           self.spec.label, stub.pid, stub.exit_description())
                stub.kill()
                self._stub = None
            self._restart()
            stub = self._stub
            if stub is None:
                raise _failed(f"{self.spec.label}: the stub process could not be restarted; see the server log",
                              StatusCode.UNAVAILABLE)
        return stub

    def _loss(self, stub: StubProcess, exc: Exception, exit_wait_s: float = 2.0) -> str:
        """Kill a stub that died or hung during an execution; the message its execution fails with."""
        if isinstance(exc, ChannelTimeout):
            stub.kill()
            message = (f"{self.spec.label}: execute took longer than {self.spec.execute_timeout_s:g} s "
                       "(execute-timeout-seconds); the stub process was killed and will be restarted")
        else:
            try:
                code = stub.process.wait(timeout=exit_wait_s)
            except Exception:
                code = None
            message = (f"{self.spec.label}: the stub process exited unexpectedly while executing "
                       f"({describe_exit(code)}); it will be restarted")
            stub.kill()
        _log.error("%s", message)
        return message

    def _lost(self, stub: StubProcess, exc: Exception) -> TritiumError:
        """The error of an execution whose stub died or hung; the stub is killed and restarted (lock held)."""
        message = self._loss(stub, exc)
        self._stub = None
        self._restart()
        return _failed(message)

    # ------------------------------------------------------------------------ execute on the loop
    def execute_async(self, batch: tritium.Batch) -> Completion[Mapping[str, np.ndarray[Any, Any]]]:
        """One execution on the event loop, pipelined behind the ones in flight (see ``_pipeline.py``).

        The common case returns the link's completion itself (no task): the stub's answer is converted where
        it is read, and the kernel's listeners run right there. Connecting (or reconnecting) to the stub and
        waiting for the pipeline to empty (before tensors that go through shared memory) take a task first."""
        return self._execute_wire(batch_to_wire(batch, self.spec.input_types))

    def _execute_wire(self, requests: list[tuple[Any, ...]]) -> Completion[Mapping[str, np.ndarray[Any, Any]]]:
        link = self._link
        if (link is None or link.error is not None or not link.on_its_loop()
                or (link.pending and (link.arena_in_use or _uses_arena(requests)))):
            done: Completion[Mapping[str, np.ndarray[Any, Any]]] = Completion()
            task = asyncio.ensure_future(self._submit_later(requests))
            task.add_done_callback(functools.partial(_settle_when_submitted, done))
            return done
        return link.submit(requests)

    async def _submit_later(self, requests: list[tuple[Any, ...]]) -> Completion[Mapping[str, np.ndarray[Any, Any]]]:
        """Connect (or reconnect) to the stub and let the pipeline empty when needed; then submit."""
        link = self._link
        if link is None or link.error is not None or link.loop is not asyncio.get_running_loop():
            link = await self._connect()
        if link.pending and (link.arena_in_use or _uses_arena(requests)):
            await link.drain()  # arenas are reused only when no execution is in flight
        return link.submit(requests)

    async def _execute_on_loop(self, batch: tritium.Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        return await self.execute_async(batch)

    def _outputs(self, results: Any) -> Mapping[str, np.ndarray[Any, Any]]:
        return results_to_outputs(results, self.spec.batching)

    async def _connect(self) -> StubLink:
        """The loop's link to a live stub, (re)starting the stub on a worker thread when it is gone."""
        old = self._link
        if old is not None and old.loop is not asyncio.get_running_loop():
            self._release_link()  # driven by another (or a closed) event loop before
            old = None
        stub = self._stub
        if stub is None or not stub.alive():  # a lost stub was killed already; _ready_stub restarts it
            stub = await asyncio.to_thread(self._ready_stub_locked)
        link = self._link
        if link is not None and link.stub is stub and link.error is None:
            return link  # connected by another execution meanwhile
        if link is not None and link.error is None:
            link.release("the stub was replaced")
        link = StubLink(stub, asyncio.get_running_loop(), self.spec.execute_timeout_s, self._outputs,
                        self._lost_on_loop, self._execute_wire)
        self._link = link
        return link

    def _ready_stub_locked(self) -> StubProcess:
        with self._lock:
            return self._ready_stub()

    def _lost_on_loop(self, link: StubLink, exc: Exception) -> TritiumError:
        """The error of the executions in flight on a link whose stub died or hung (called once per link:
        the stub is killed, and restarted on a thread of its own, since a restart runs ``initialize``)."""
        message = self._loss(link.stub, exc, exit_wait_s=0.5)
        threading.Thread(target=self._replace, args=(link.stub,), name="tritium-python-restart",
                         daemon=True).start()
        return _failed(message)

    def _replace(self, stub: StubProcess) -> None:
        with self._lock:
            if self._stub is stub and not self._closing:
                self._stub = None
                self._restart()

    def _release_link(self) -> None:
        """Stop driving the stub from the event loop (before a blocking exchange or at close)."""
        link, self._link = self._link, None
        if link is not None:
            link.release("the stub left the event loop")

    # ----------------------------------------------------------------------------------- execute
    def execute(self, batch: tritium.Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        link = self._link
        if link is not None and link.error is None and link.loop.is_running():
            try:
                on_loop = asyncio.get_running_loop() is link.loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                raise _failed(f"{self.spec.label}: execute called on the event loop; await execute_async there")
            return asyncio.run_coroutine_threadsafe(self._execute_on_loop(batch), link.loop).result()
        self._release_link()
        requests = batch_to_wire(batch, self.spec.input_types)
        timeout = self.spec.execute_timeout_s or None
        with self._lock:
            stub = self._ready_stub()
            stub.channel.reset_arena()
            try:
                reply = stub.exchange(("execute", requests), timeout, _expect_result)
            except (ChannelClosed, ChannelTimeout) as exc:
                raise self._lost(stub, exc) from None
        return results_to_outputs(reply, self.spec.batching)

    def execute_decoupled(self, request: tritium.InferenceRequest, send: tritium.ResponseSender) -> None:
        self._release_link()
        execution = next(self._executions)
        timeout = self.spec.execute_timeout_s or None

        def handle(message: Any) -> Any:
            kind = message[0]
            if kind == "response":
                _, number, _index, outputs, final, error = message
                if number != execution:
                    return CONTINUE  # late responses of an execution that already ended
                if error is not None:
                    raise error_from_wire(*error)
                send(outputs_from_wire(outputs) if outputs is not None else None, final)
                return True if final else CONTINUE
            if kind == "executed":
                if message[1] == execution and message[2] is not None:
                    raise error_from_wire(*message[2])
                return CONTINUE
            return CONTINUE

        with self._lock:
            stub = self._ready_stub()
            stub.channel.reset_arena()
            try:
                stub.exchange(("execute_decoupled", execution, [request_to_wire(request)]), timeout, handle)
            except (ChannelClosed, ChannelTimeout) as exc:
                raise self._lost(stub, exc) from None

    # ------------------------------------------------------------------------------------- close
    def close(self) -> None:
        """Finalize the model and end its stub. An execution still running after ``stub-timeout-seconds``
        (a hung model) is cut short by killing the stub, so that unloading never hangs."""
        self._closing = True
        self._release_link()
        if not self._lock.acquire(timeout=self.spec.stub_timeout_s):
            stub = self._stub
            if stub is not None:
                _log.error("%s: an execution is still running at unload; killing the stub process", self.spec.label)
                stub.kill()
            self._lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
            stub, self._stub = self._stub, None
            if stub is not None:
                error = stub.stop(self.spec.stub_timeout_s)
                if error:
                    _log.error("%s: %s", self.spec.label, error)
        finally:
            self._lock.release()


def _uses_arena(requests: list[tuple[Any, ...]]) -> bool:
    """Whether a request has an input array that goes through shared memory (not packed into the message)."""
    return any(type(tensor[2]) is not tuple for request in requests for tensor in request[5])


def _expect_result(message: Any) -> Any:
    if message[0] == "result":
        return message[1]
    return CONTINUE  # late messages of a decoupled execution


def _settle_when_submitted(done: Completion[Any], task: asyncio.Future[Completion[Any]]) -> None:
    """Once a delayed submission happened, ``done`` ends as the submitted execution ends (or as the
    submission failed)."""
    if task.cancelled() or task.exception() is not None:
        copy_outcome(done, task)
    else:
        task.result().when_settled(functools.partial(copy_outcome, done))
