"""Keeping Python's cycle collector off the objects a server starts with.

Loading plugins, frameworks and models leaves hundreds of thousands of long-lived objects in the heap. The
collector's full collections walk all of them, each time pausing the event loop for 10-20 ms (seen as a p99
three times the median under load). Once the server is up, those objects are moved to the permanent
generation (:func:`gc.freeze`): they are never walked again, and those that reference counting frees are freed
as usual. Only cyclic garbage among them would never be collected, which matters when a model loaded before
the freeze is unloaded: after unloads or replacements the heap is unfrozen, collected once and frozen again
(:class:`RetiredCollection`: one collection a second after the last of a burst of unloads, since each
pauses the process for a few hundred milliseconds; none while the server shuts down), so nothing a model
leaves behind is kept.

The youngest generation is also collected less often: 10,000 net allocations instead of Python's 700.
Under load a serving process holds thousands of container objects per batch of requests in flight (futures,
requests, wire tuples) that are freed later, out of step with the allocation counter, so at 700 it ran a
young collection every twenty or so requests (isolated Python models at concurrency 64), each walking every
request in flight; at 10,000 the in-flight objects fit below the threshold and such collections all but stop.

The serving processes (``tritium serve``, and with ``--workers`` the executor and every worker) freeze once
they are ready; a :class:`tritium.Server` embedded in another program leaves its host's heap alone.
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_THRESHOLD = 10_000
"""Net allocations of container objects between two collections of the youngest generation."""


def freeze_long_lived() -> None:
    """Collect once, keep every object alive now out of later collections, and collect the youngest
    generation at :data:`YOUNG_THRESHOLD` (never lowering a larger threshold set by the operator)."""
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, *older)


def collect_retired() -> None:
    """After a model version was closed: collect what it left (its cycles too), then freeze the rest again.
    Nothing to do in a process that never froze its heap (an embedded server, the tests)."""
    if not gc.get_freeze_count():
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


COLLECT_AFTER_S = 1.0
"""How long after the last retired model version the collection runs (unloads come in bursts)."""


class RetiredCollection:
    """Runs :func:`collect_retired` once after a burst of retired model versions, on the event loop."""

    __slots__ = ("_handle", "_stopped")

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False

    def schedule(self) -> None:
        """A model version was closed: collect a little later (again later if another one follows)."""
        if self._stopped or not gc.get_freeze_count():
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_later(COLLECT_AFTER_S, self._run)

    def stop(self) -> None:
        """The server shuts down: the process exits soon, no collection is worth its pause."""
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self._handle = None
        collect_retired()
