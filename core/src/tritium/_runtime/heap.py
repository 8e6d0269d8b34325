"""Keeping Python's cycle collector off the objects a server starts with.

Loading plugins, frameworks and models leaves hundreds of thousands of long-lived objects in the heap. The
collector's full collections walk all of them, each time pausing the event loop for 10-20 ms (seen as a p99
three times the median under load). Once the server is up, those objects are moved to the permanent
generation (:func:`gc.freeze`): they are never walked again, and those that reference counting frees are freed
as usual. Only cyclic garbage among them would never be collected, which matters when a model loaded before
the freeze is unloaded: after every unload or replacement the heap is unfrozen, collected once and frozen
again, so nothing a model leaves behind is kept.

The serving processes (``tritium serve``, and with ``--workers`` the executor and every worker) freeze once
they are ready; a :class:`tritium.Server` embedded in another program leaves its host's heap alone.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect once, then keep every object alive now out of later collections."""
    gc.collect()
    gc.freeze()


def collect_retired() -> None:
    """After a model version was closed: collect what it left (its cycles too), then freeze the rest again.
    Nothing to do in a process that never froze its heap (an embedded server, the tests)."""
    if not gc.get_freeze_count():
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
