"""The event loop's end of a stub channel: executions awaited on the loop, several in flight at once.

The kernel awaits ``IsolatedInstance.execute_async`` on its event loop (see ``tritium.abc.ModelInstance``).
A :class:`StubLink` makes that a plain exchange of messages with no thread in between: the loop sends an
``execute`` without blocking and reads the stub's answers when its socket is readable (``add_reader``), so a
request costs one loop -> stub -> loop round trip. Up to the instance's ``pipeline_depth`` executions may be
sent before the first answer arrives: the stub then finds the next request waiting when it finishes one,
instead of idling while the server hands the answer back and the next request over. The stub runs them one
at a time, in order, exactly as it runs unpipelined ones (Triton's semantics: one ``execute`` call per
request without dynamic batching).

Answers arrive in order, so each goes to the oldest execution in flight. What else the stub sends meanwhile
(log lines, BLS calls, readiness checks) is served as in a blocking exchange. A stub that exits, or whose
execution outlives the execute timeout, fails the execution it was running (the oldest in flight); the ones
queued behind it had not started, so they are executed again on the restarted stub, as Triton runs the
requests still queued for a crashed stub on its replacement.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from tritium import FailureReason, StatusCode, TritiumError
from tritium_backend_python._channel import ChannelClosed, ChannelTimeout
from tritium_backend_python._stub_process import LEVELS, StubProcess

_log = logging.getLogger("tritium.backend.python")


Outputs = Mapping[str, np.ndarray[Any, Any]]

_LOW_WATER = 1
"""Executions held back are written as soon as the stub has at most this many left to run."""


class StubLink:
    """Pipelined executions on one stub, driven by ``loop`` (create, use and detach it on that loop).

    ``convert(results)`` turns the stub's results into an execution's outputs (or raises its error);
    ``lost(link, error)`` is called once when the stub is lost (it exited, a send failed, an execution
    timed out) and returns the error the execution it was running fails with (later ones on this link fail
    with it too); ``retry(requests)`` executes again, elsewhere, those queued behind it.
    """

    def __init__(
        self,
        stub: StubProcess,
        loop: asyncio.AbstractEventLoop,
        execute_timeout_s: float,
        convert: Callable[[Any], Outputs],
        lost: Callable[[StubLink, Exception], TritiumError],
        retry: Callable[[list[tuple[Any, ...]]], Awaitable[Outputs]],
    ) -> None:
        self.stub = stub
        self.loop = loop
        self.channel = stub.channel
        self.pending: deque[asyncio.Future[Outputs]] = deque()
        self._requests: deque[list[tuple[Any, ...]]] = deque()  # of each pending execution, to retry it
        self.results_read = 0
        self.error: TritiumError | None = None
        self._convert = convert
        self._lost = lost
        self._retry = retry
        self.arena_in_use = False
        """The last result viewed the stub's arena: let the pipeline empty before the next execution, so
        that the stub can reuse its arena (else it would keep growing it)."""
        self._timeout = execute_timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._fd = self.channel.fileno()
        self._writing = False
        self._flush_scheduled = False
        self._unsent = 0  # executions of ``pending`` held back in the channel, not written yet
        self._attached = True
        self.channel.start_nonblocking(self._blocked)
        loop.add_reader(self._fd, self._readable)
        stub.before_close = self.release

    # ---------------------------------------------------------------------------------- executing
    def submit(self, requests: list[tuple[Any, ...]]) -> asyncio.Future[Outputs]:
        """Send one execution; the future gets its outputs (or its error, or the link's)."""
        if self.error is not None:
            raise self.error
        if not self.pending:
            self.channel.reset_arena()  # the stub holds no views of this side's arena any more
        future: asyncio.Future[Outputs] = self.loop.create_future()
        # Held back, so that executions submitted meanwhile go to the stub in the same write (one system
        # call, one wake-up): until the loop has run what is ready now when the stub has at most one
        # execution to run, else until an answer shows it took the next one (it has work until then).
        self.channel.send(("execute", requests, self.results_read), defer=True)
        self._unsent += 1
        self.pending.append(future)
        self._requests.append(requests)
        if not self._flush_scheduled and len(self.pending) - self._unsent <= _LOW_WATER:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        if len(self.pending) == 1:
            self._arm()
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unsent = 0
        try:
            self.channel.flush()
        except ChannelClosed as exc:
            self._lose(exc)

    async def drain(self) -> None:
        """Wait until no execution is in flight (their outcomes are their awaiters')."""
        while self.pending:
            await asyncio.wait((self.pending[-1],))

    def _readable(self) -> None:
        try:
            messages = self.channel.pump()
        except ChannelClosed as exc:
            self._lose(exc)
            return
        for message, uses_arena in messages:
            kind = message[0]
            if kind == "result":
                self.results_read += 1
                self.arena_in_use = uses_arena
                if self.pending:
                    future = self.pending.popleft()
                    self._requests.popleft()
                    if not future.done():
                        try:
                            future.set_result(self._convert(message[1]))
                        except Exception as exc:  # the model's error (TritiumError) or a conversion's
                            future.set_exception(exc)
                    self._arm()
            elif kind == "log":
                _log.log(LEVELS.get(message[1], logging.INFO), "%s: %s", self.stub.label, message[2])
            elif kind == "bls" or kind == "ready":
                self.stub.serve_call(message)
            else:
                _log.warning("%s: unexpected message %r from the stub", self.stub.label, kind)
        if self._unsent and not self._flush_scheduled and len(self.pending) - self._unsent <= _LOW_WATER:
            self._flush()

    # ------------------------------------------------------------------------------------ timeout
    def _arm(self) -> None:
        """Time the oldest execution in flight (the one the stub runs now) against the execute timeout."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timeout > 0 and self.pending:
            self._timer = self.loop.call_later(self._timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self.pending:
            self._lose(ChannelTimeout("execute timed out"))

    # ------------------------------------------------------------------------------------ writing
    def _blocked(self) -> None:
        """The socket did not take a whole message: write the rest when it is writable (any thread)."""
        self.loop.call_soon_threadsafe(self._watch_writable)

    def _watch_writable(self) -> None:
        if self._attached and not self._writing:
            self._writing = True
            self.loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            done = self.channel.write_tail()
        except ChannelClosed as exc:
            self._lose(exc)
            return
        if done:
            self._writing = False
            self.loop.remove_writer(self._fd)

    # ----------------------------------------------------------------------------------- stopping
    def _lose(self, cause: Exception) -> None:
        """The stub is lost: the instance is told (once); the execution the stub was running fails with its
        error, and the ones queued behind it (not started) are retried."""
        if self.error is not None:
            return
        queued = list(zip(self.pending, self._requests, strict=True))[1:]
        for _ in queued:
            self.pending.pop()
        self._requests.clear()
        self.fail(self._lost(self, cause))
        for future, requests in queued:
            if not future.done():
                retried = asyncio.ensure_future(self._retry(requests))
                retried.add_done_callback(functools.partial(_copy_outcome, future))

    def fail(self, error: TritiumError) -> None:
        """Every execution in flight fails with ``error``, and so does every later one; the loop lets go."""
        if self.error is None:
            self.error = error
        self.detach()
        self._requests.clear()
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)

    def release(self, reason: str = "the stub process was stopped") -> None:
        """Stop driving the stub from the loop, from any thread (waiting for the loop when called from
        another): what is in flight fails, and the socket is left alone, blocking again. Called before the
        stub's channel closes, and before a blocking exchange uses it."""
        error = TritiumError(StatusCode.UNAVAILABLE, f"{self.stub.label}: {reason}", reason=FailureReason.BACKEND)

        def release_on_loop() -> None:
            if self.pending:  # the stub is killed under executions in flight (it exited): it is lost
                self._lose(ChannelClosed(reason))
            self.fail(error)

        loop = self.loop
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or not loop.is_running():
            release_on_loop()
            return
        done = threading.Event()

        def release() -> None:
            try:
                release_on_loop()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(release)
        except RuntimeError:  # the loop closed meanwhile
            self.fail(error)
            return
        if not done.wait(10.0):
            _log.error("%s: the event loop did not release the stub's channel in time", self.stub.label)

    def detach(self) -> None:
        """Stop driving the channel from the loop (call on the loop); it is blocking again afterwards."""
        if not self._attached:
            return
        self._attached = False
        if self.stub.before_close == self.release:
            self.stub.before_close = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.loop.remove_reader(self._fd)
            if self._writing:
                self.loop.remove_writer(self._fd)
        except Exception:
            pass  # the socket or the loop is closed already
        self._writing = False
        try:
            self.channel.flush()
            self.channel.stop_nonblocking()
        except ChannelClosed:
            pass


def _copy_outcome(target: asyncio.Future[Outputs], source: asyncio.Future[Outputs]) -> None:
    """Settle ``target`` as ``source`` ended (a retried execution's outcome goes to its first future)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
