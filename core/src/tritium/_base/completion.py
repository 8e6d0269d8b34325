"""A future whose listeners run when it is settled, not one event loop turn later.

An asyncio future schedules its done callbacks with ``call_soon``: each layer that reacts to an execution's end
(the pool records it, the scheduler turns it into a response, the frontend writes the answer) costs a loop
iteration and a handle, and a coroutine between them costs a task. A :class:`Completion` is an asyncio future
(it can be awaited, shielded, waited for, given callbacks, as any other) that also takes *settle listeners*:
called synchronously, in the order they were added, by the call that settles it (``set_result``,
``set_exception`` or ``cancel``), before its done callbacks are scheduled. The layers of one request then
react to its end within the loop callback that saw it end (a backend reading its worker's answer), with no
task and no handle in between.

Settle a completion on its event loop's thread only (as any asyncio future); a listener must not block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")

# The base class's methods, called directly: cheaper than super() on the path of every request.
_set_result = asyncio.Future.set_result
_set_exception = asyncio.Future.set_exception
_cancel = asyncio.Future.cancel


class Completion(asyncio.Future[_T], Generic[_T]):
    """An asyncio future with synchronous settle listeners (see the module's docstring).

    Create one with ``Completion(loop=loop)`` (or without ``loop`` on the running loop's thread).
    """

    _listeners: list[Callable[[Completion[_T]], None]] | None = None

    started_ns: int | None = None
    """For a backend's ``execute_async``: when the execution's work actually began (``time.monotonic_ns()``,
    a clock every process of the machine shares), if the backend held it first (queued in a worker process
    behind others). Set it before settling; the kernel then counts the time before it as the requests' queue
    time and the rest as compute time, as Triton does. None: the work began when the kernel started it."""

    def when_settled(self, listener: Callable[[Completion[_T]], None]) -> None:
        """Call ``listener(self)`` when this completion is settled: at once when it is already, else from the
        call that settles it. A listener that raises is logged (through the loop's exception handler); the
        others still run."""
        if self.done():
            self._call(listener)
            return
        listeners = self._listeners
        if listeners is None:
            self._listeners = [listener]
        else:
            listeners.append(listener)

    def set_result(self, result: _T, /) -> None:
        _set_result(self, result)
        if self._listeners is not None:
            self._settled()

    def set_exception(self, exception: type[BaseException] | BaseException, /) -> None:
        _set_exception(self, exception)
        if self._listeners is not None:
            self._settled()

    def cancel(self, msg: Any | None = None) -> bool:
        if not _cancel(self, msg):
            return False
        if self._listeners is not None:
            self._settled()
        return True

    def _settled(self) -> None:
        listeners = self._listeners
        self._listeners = None
        for listener in listeners or ():
            self._call(listener)

    def _call(self, listener: Callable[[Completion[_T]], None]) -> None:
        try:
            listener(self)
        except Exception as exc:
            self.get_loop().call_exception_handler(
                {"message": "a Completion's settle listener failed", "exception": exc, "future": self}
            )

