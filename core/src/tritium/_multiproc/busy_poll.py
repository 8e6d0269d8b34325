"""Keeping an event loop awake for a moment after traffic between the server's processes.

A process that sleeps in its selector is woken by the kernel when data arrives, and on a virtual machine that
wake-up costs tens of microseconds, paid by the writer (it sends the interrupt) as much as by the woken. With
``--workers N`` every request crosses to the executor and back: at one client at a time that was two
wake-ups per request, which halved the requests per second of one process on a host where a wake-up took
about 90 µs. A loop that keeps looking (its selector asked with a zero timeout) for a moment after the last
message, instead of sleeping, finds the answer, or the next request, without either wake-up.
"""

from __future__ import annotations

import asyncio
import os


class BusyPoll:
    """Keeps the running event loop from sleeping for ``window_s`` after the last :meth:`touch`.

    While it polls, one callback per loop iteration keeps the selector's timeout at zero; when that callback
    is all the loop has to run, the process gives its processor to anything else runnable first
    (``sched_yield``), so that polling takes only time nothing else wanted. ``window_s`` 0 turns it off.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = max(window_s, 0.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0.0
        self._polling = False
        self._yield = getattr(os, "sched_yield", None)

    @property
    def polling(self) -> bool:
        """Whether the loop is being kept awake now."""
        return self._polling

    def touch(self) -> None:
        """Traffic happened now (on the loop's thread): keep the loop awake for the window from now."""
        if self.window_s <= 0:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._last = loop.time()
        if not self._polling:
            self._polling = True
            loop.call_soon(self._poll)

    def _poll(self) -> None:
        loop = self._loop
        assert loop is not None
        if loop.time() - self._last >= self.window_s:
            self._polling = False
            return
        if self._yield is not None and not getattr(loop, "_ready", True):  # nothing else to run this turn
            self._yield()
        loop.call_soon(self._poll)
