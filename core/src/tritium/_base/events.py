"""Events the kernel emits to metrics sinks.

Durations are nanoseconds. ``model``/``version`` identify the model version (version as a string, as Triton
labels it). Sinks receive these through :meth:`tritium.MetricsSink.handle`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from tritium._base.errors import FailureReason


@attrs.define(frozen=True, slots=True)
class RequestCompleted:
    """A request finished. ``batch_size`` is the request's own batch size (1 for non-batching models);
    for a failed request ``reason`` says why and the compute durations may be 0."""

    model: str
    version: str
    success: bool
    reason: FailureReason | None
    batch_size: int
    request_ns: int
    queue_ns: int
    compute_input_ns: int
    compute_infer_ns: int
    compute_output_ns: int


@attrs.define(frozen=True, slots=True)
class BatchExecuted:
    """A model instance executed once on ``batch_size`` inferences gathered from ``request_count`` requests."""

    model: str
    version: str
    batch_size: int
    request_count: int


@attrs.define(frozen=True, slots=True)
class ModelLoaded:
    """A model version became READY after ``load_seconds``."""

    model: str
    version: str
    load_seconds: float


@attrs.define(frozen=True, slots=True)
class ModelUnloaded:
    """A model version stopped serving."""

    model: str
    version: str


@attrs.define(frozen=True, slots=True)
class QueueSizeChanged:
    """The number of requests queued for a model version and not yet executing changed."""

    model: str
    version: str
    pending: int


Event = RequestCompleted | BatchExecuted | ModelLoaded | ModelUnloaded | QueueSizeChanged


@attrs.define(slots=True)
class EventBus:
    """Delivers each event to every sink; a failing sink is logged and never affects the caller."""

    handlers: Sequence[Callable[[Event], None]] = ()
    on_error: Callable[[Callable[[Event], None], BaseException], None] | None = None

    def emit(self, event: Event) -> None:
        for handler in self.handlers:
            try:
                handler(event)
            except Exception as exc:  # a sink must never break the request path
                if self.on_error is not None:
                    self.on_error(handler, exc)
