"""The event loop's end of a stub channel: executions awaited on the loop, several in flight at once.

The kernel awaits ``IsolatedInstance.execute_async`` on its event loop (see ``tritium.abc.ModelInstance``).
A :class:`StubLink` makes that a plain exchange of messages with no thread in between: the loop writes an
``execute`` into the stub's ring (ringing its doorbell only if it sleeps, once at the end of the loop's turn
for all the executions written in it) and takes the answers from the
other ring, once per loop iteration while executions are in flight (no system call), so a request costs one
loop -> stub -> loop round trip. When the loop found no answer for ``polling.server_s`` (and at once, when
that is 0 and one execution is in flight) it raises its flag and the stub rings its socket, which the loop
watches (``add_reader``; the stub's exit makes it readable too). Up to the instance's ``pipeline_depth``
executions may be sent before the first answer arrives: the stub then finds
the next request waiting when it finishes one, instead of idling while the server hands the answer back and
the next request over. The stub runs them one at a time, in order, exactly as it runs unpipelined ones
(Triton's semantics: one ``execute`` call per request without dynamic batching).

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
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tritium import Completion, FailureReason, StatusCode, TritiumError
from tritium_backend_python._channel import ChannelClosed, ChannelTimeout
from tritium_backend_python._stub_process import LEVELS, StubProcess

_log = logging.getLogger("tritium.backend.python")

_WATCHDOG_S = 1.0


Outputs = Mapping[str, np.ndarray[Any, Any]]

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
        retry: Callable[[list[tuple[Any, ...]]], Completion[Outputs]],
    ) -> None:
        self.stub = stub
        self.loop = loop
        self._thread = threading.get_ident()
        self.channel = stub.channel
        self.pending: deque[Completion[Outputs]] = deque()
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
        self._poll_s = stub.polling.server_s
        self._polling = False  # a _poll is scheduled
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_progress = 0.0
        self._attached = True
        self._losing = False
        self.channel.start_nonblocking(self._blocked, self._defer_doorbell)
        loop.add_reader(self._fd, self._readable)
        stub.before_close = self.release

    def on_its_loop(self) -> bool:
        """Whether the caller runs on this link's loop (a thread runs one loop at a time; cheaper than
        ``asyncio.get_running_loop()``, a system call per call)."""
        return self.loop.is_running() and threading.get_ident() == self._thread

    # ---------------------------------------------------------------------------------- executing
    def submit(self, requests: list[tuple[Any, ...]]) -> Completion[Outputs]:
        """Send one execution; the future gets its outputs (or its error, or the link's)."""
        if self.error is not None:
            raise self.error
        if not self.pending:
            self.channel.reset_arena()  # the stub holds no views of this side's arena any more
        future: Completion[Outputs] = Completion(loop=self.loop)  # its listeners run as its answer is read
        # Into the ring now; the stub's doorbell rings only if it sleeps (then once for all written meanwhile).
        self.channel.send(("execute", requests, self.results_read))
        self.pending.append(future)
        self._requests.append(requests)
        if len(self.pending) == 1:
            self._arm()
            if self._watchdog is None:
                self._watchdog = self.loop.call_later(_WATCHDOG_S, self._watch)
        if not self._polling:
            if (self._poll_s <= 0 or len(self.pending) > 1) and self.channel.prepare_sleep():
                return future  # the stub rings when it answers (no loop iteration spent here)
            self._start_polling()
        return future

    async def drain(self) -> None:
        """Wait until no execution is in flight (their outcomes are their awaiters')."""
        while self.pending:
            await asyncio.wait((self.pending[-1],))

    def _start_polling(self) -> None:
        self._polling = True
        self._last_progress = time.monotonic()
        self.channel.stop_waiting()
        self.loop.call_soon(self._poll)

    def _poll(self) -> None:
        """Take the stub's answers from the ring (no system call); again at the next loop iteration while
        answers come, or for up to ``polling.server_s`` since the last one when a single execution is in
        flight. Then ask the stub to ring the socket instead (:meth:`_readable`)."""
        self._polling = False
        if not self._attached:
            return
        channel = self.channel
        try:
            if channel.has_tail():
                channel.write_tail()
            messages = channel.poll()
        except ChannelClosed as exc:
            self._lose(exc)
            return
        if messages:
            self._last_progress = time.monotonic()
            self._handle(messages)
            if not self._attached:
                return
        if not self.pending and not channel.has_tail():
            return
        # Looking again at every iteration keeps the loop from sleeping in its selector (an empty look
        # costs little, but the selector then returns at once, fewer events per call): only while a single
        # execution is in flight, whose answer is what the loop waits for.
        if messages or (len(self.pending) == 1 and time.monotonic() - self._last_progress < self._poll_s) \
                or not channel.prepare_sleep():
            self._polling = True
            self.loop.call_soon(self._poll)

    def _readable(self) -> None:
        """The socket is readable: a doorbell (the stub answered while this side slept), or the stub's exit."""
        try:
            messages = self.channel.pump()
            if self.channel.has_tail():
                self.channel.write_tail()
        except ChannelClosed as exc:
            self._lose(exc)
            return
        self._handle(messages)
        if not self._attached or self._polling:
            return
        # Poll on for a single execution in flight (or a tail to write); with several, wait for the next
        # doorbell unless an answer came meanwhile.
        spin = len(self.pending) == 1 and self._poll_s > 0
        if self.channel.has_tail() or spin or (self.pending and not self.channel.prepare_sleep()):
            self._start_polling()

    def _watch(self) -> None:
        """Every few seconds while executions are in flight: look at the ring, in case a wake-up was lost
        (it cannot be where the fence of ``_ring.py`` is a full fence, as on x86; a safety net elsewhere)."""
        self._watchdog = None
        if not self._attached or not self.pending:
            return
        if not self._polling:
            self._start_polling()
        self._watchdog = self.loop.call_later(_WATCHDOG_S, self._watch)

    def _handle(self, messages: list[tuple[Any, bool]]) -> None:
        for message, uses_arena in messages:
            kind = message[0]
            if kind == "result":
                self.results_read += 1
                self.arena_in_use = uses_arena
                if self.pending:
                    future = self.pending.popleft()
                    self._requests.popleft()
                    if len(message) > 2:
                        future.started_ns = message[2]  # when the stub began it: before, it was queued
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
    def _defer_doorbell(self) -> None:
        """A message went into the stub's ring: wake the stub (if it sleeps) once this turn of the loop has
        sent what it sends, so that the executions submitted together wake it once (any thread)."""
        if threading.get_ident() == self._thread:
            self.loop.call_soon(self._ring_doorbell)
        else:
            self.loop.call_soon_threadsafe(self._ring_doorbell)

    def _ring_doorbell(self) -> None:
        if not self._attached:
            return
        try:
            self.channel.ring_doorbell_if_wanted()
        except ChannelClosed as exc:
            self._lose(exc)

    def _blocked(self) -> None:
        """The ring had no room for a whole message (any thread): the polls write the rest."""
        self.loop.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        if self._attached and not self._polling:
            self._start_polling()

    # ----------------------------------------------------------------------------------- stopping
    def _lose(self, cause: Exception) -> None:
        """The stub is lost: the instance is told (once); the execution the stub was running fails with its
        error, and the ones queued behind it (not started) are retried."""
        if self.error is not None or self._losing:
            return
        self._losing = True
        if self._attached:
            # What the stub answered before it went is still in the ring (the loss may be seen first, by a
            # doorbell that found its socket closed): those executions succeeded.
            try:
                messages = self.channel.poll()
            except ChannelClosed:
                messages = []
            if messages:
                self._handle(messages)
        queued = list(zip(self.pending, self._requests, strict=True))[1:]
        for _ in queued:
            self.pending.pop()
        self._requests.clear()
        self.fail(self._lost(self, cause))
        for future, requests in queued:
            if not future.done():
                self._retry(requests).when_settled(functools.partial(copy_outcome, future))

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        try:
            self.loop.remove_reader(self._fd)
        except Exception:
            pass  # the socket or the loop is closed already
        try:
            self.channel.stop_nonblocking()
        except ChannelClosed:
            pass



def copy_outcome(target: Completion[Outputs], source: asyncio.Future[Outputs]) -> None:
    """Settle ``target`` as ``source`` ended, with when its work began (a retried or delayed execution's
    outcome goes to the completion the kernel holds)."""
    if target.done():
        return
    target.started_ns = getattr(source, "started_ns", None)
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
