"""Whether a model's executions run inline on the event loop thread or on its instances' worker threads.

Handing a request to a worker thread and back costs tens of microseconds and GIL contention with the event
loop; for a model that executes in less than the threshold (``--inline-execution-us``) that overhead dominates,
so such executions run inline (a blocked loop for less than the threshold, like any per-request work).
"""

from __future__ import annotations

_INLINE_WINDOW = 16  # executions per inline/worker-thread decision
_MAX_SETBACKS = 6  # a model that keeps leaving inline execution is judged over at most 16 << 6 executions


class InlinePolicy:
    """The inline decision of one model version, from the durations of its executions.

    ``inline`` is the current decision (False until measured); ``threshold_ns`` 0 disables inline execution.
    """

    def __init__(self, threshold_ns: int) -> None:
        self.threshold_ns = threshold_ns
        self.inline = False
        self.samples = 0
        self._window: list[int] = []
        self._setbacks = 0
        self._good_windows = 0

    def keep_off(self) -> None:
        """Never run inline again (the model's instances wait on nested requests the loop must serve)."""
        self.threshold_ns = 0
        self.inline = False

    def observe(self, duration_ns: int, inline: bool) -> None:
        """Feed one execution's duration (``inline``: whether it ran inline) to the decision.

        Executions are judged in windows of ``_INLINE_WINDOW`` (longer after each move back to the worker
        threads, so a model at the edge does not flap). On the worker threads a window's *fastest*
        execution is the estimate: a thread's execution also waits for the GIL while the event loop holds
        it (up to CPython's 5 ms switch interval), which is exactly the overhead inline execution removes,
        and which would otherwise keep a fast model off the loop under load. Inline, measurements are clean
        and the window's *median* decides: at or above the threshold (larger batches, a slower model), the
        model goes back to its worker threads.
        """
        self.samples += 1
        threshold = self.threshold_ns
        if threshold <= 0 or inline is not self.inline:
            return  # disabled, or an execution that started before the last switch
        window = self._window
        window.append(duration_ns)
        if not inline:
            if len(window) >= _INLINE_WINDOW << self._setbacks:
                self.inline = min(window) < threshold
                window.clear()
            return
        if len(window) >= _INLINE_WINDOW:
            window.sort()
            if window[len(window) // 2] >= threshold:
                self.inline = False
                self._setbacks = min(self._setbacks + 1, _MAX_SETBACKS)
                self._good_windows = 0
            else:
                self._good_windows += 1
                if self._good_windows >= _INLINE_WINDOW:
                    self._setbacks = 0
            window.clear()
