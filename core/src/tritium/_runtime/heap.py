"""Keeping Python's cycle collector off the objects a server starts with.

Loading plugins, frameworks and models leaves hundreds of thousands of long-lived objects in the heap. The
collector's full collections walk all of them, each time pausing the event loop for 10-20 ms (seen as a p99
three times the median under load). Once the server is up, those objects are moved to the permanent
generation (:func:`gc.freeze`): they are never walked again, and those that reference counting frees are freed
as usual. Only cyclic garbage among them would never be collected, which matters when a model loaded before
the freeze is unloaded: after every unload or replacement the heap is unfrozen, collected once and frozen
again, so nothing a model leaves behind is kept.

The youngest generation is also collected less often: 10,000 net allocations instead of Python's 700.
Under load a serving process holds thousands of container objects per batch of requests in flight (futures,
requests, wire tuples) that are freed later, out of step with the allocation counter, so at 700 it ran a
young collection every twenty or so requests (isolated Python models at concurrency 64), each walking every
request in flight; at 10,000 the in-flight objects fit below the threshold and such collections all but stop.

The serving processes (``tritium serve``, and with ``--workers`` the executor and every worker) freeze once
they are ready; a :class:`tritium.Server` embedded in another program leaves its host's heap alone.
"""

from __future__ import annotations

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
