"""The thread of one model instance: where its executions run, off the event loop.

``loop.run_in_executor`` costs the event loop about 75 µs of CPU per call on this project's 2-core test
machine (executor bookkeeping, a ``concurrent.futures.Future`` with its condition variable, chaining it to an
asyncio future). An instance runs one execution at a time anyway, so a plain queue and a callback onto the
loop do the same hand-off for about 30 µs. That time comes out of every request of a model without dynamic
batching.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class InstanceThread:
    """Runs submitted calls one at a time, in submission order, on a thread of its own (started on first
    use), and settles each call's asyncio future on the loop that submitted it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``function(*args)``; the future (of the running loop) gets its result or exception.

        Cancelling the future does not stop the call: it runs to its end, and its outcome is dropped.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"instance thread '{self.name}' is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
            self._calls.put((loop, future, function, args))
        return future

    def close(self, wait: bool = True) -> None:
        """Refuse new calls; the queued ones still run. With ``wait``, return after the last one ended."""
        with self._lock:
            if self._closed:
                thread = None
            else:
                self._closed = True
                thread = self._thread
                if thread is not None:
                    self._calls.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        calls = self._calls
        while True:
            call = calls.get()
            if call is None:
                return
            loop, future, function, args = call
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except BaseException as exc:  # delivered to the awaiting task, as run_in_executor does
                error = exc if not isinstance(exc, StopIteration) else RuntimeError(repr(exc))
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                pass
            del call, future, function, args, result, error


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by its owner meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
