"""Accounting of one model version's requests: Triton's statistics and the metrics events, per execution,
per decoupled stream, and for requests answered without an execution."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from tritium._base.errors import FailureReason, TritiumError
from tritium._base.events import BatchExecuted, Event, EventBus, RequestCompleted
from tritium._base.stats import ModelStatistics
from tritium._base.tensors import InferenceRequest, InferenceResponse

Result = InferenceResponse | TritiumError


@attrs.define(slots=True)
class Timing:
    """How long the three parts of one execution took."""

    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0
    held_ns: int = 0
    """How long the backend held the execution before its work began (a Completion's ``started_ns``): queue
    time, as Triton counts a request queued until its backend takes it."""


def _event_bus(emit: Callable[[Event], None] | None) -> EventBus | None:
    """The bus behind ``emit`` when it is an :meth:`EventBus.emit`: with no sink attached, the recorder skips
    building events nobody reads (two objects per request on the hot path)."""
    owner = getattr(emit, "__self__", None)
    return owner if isinstance(owner, EventBus) else None


class ExecutionRecorder:
    """Records what happened to one model version's requests in its :class:`ModelStatistics` and as events."""

    def __init__(
        self,
        model_name: str,
        version_label: str,
        statistics: ModelStatistics,
        emit: Callable[[Event], None] | None,
        clock_ns: Callable[[], int],
    ) -> None:
        self.model_name = model_name
        self.version_label = version_label
        self.statistics = statistics
        self.emit = emit or (lambda event: None)
        self._clock = clock_ns
        self._bus = _event_bus(emit)
        self._events = emit is not None

    def execution(
        self, results: list[Result], timing: Timing, requests: Sequence[InferenceRequest], start_ns: int
    ) -> None:
        """Statistics and events of one finished execution of ``requests`` that started at ``start_ns``."""
        bus = self._bus
        events = self._events and (bus is None or bool(bus.handlers))
        statistics = self.statistics
        input_ns, infer_ns, output_ns = timing.input_ns, timing.infer_ns, timing.output_ns
        if len(requests) == 1:
            request = requests[0]
            result = results[0]
            ok = type(result) is InferenceResponse or isinstance(result, InferenceResponse)
            size = request.batch_size if request.batch_size > 1 else 1
            if infer_ns or ok:
                statistics.record_execution(size, 1, input_ns, infer_ns, output_ns)
                if events:
                    self.emit(BatchExecuted(self.model_name, self.version_label, size, 1))
            now = self._clock()
            arrival = request.arrival_ns
            queue_ns = max(start_ns + timing.held_ns - arrival, 0) if arrival else 0
            request_ns = max(now - arrival, 0) if arrival else now - start_ns
            if ok:
                statistics.record_success(request_ns, queue_ns)
                reason = None
            else:
                statistics.record_failure(request_ns)
                reason = result.reason  # type: ignore[union-attr]
            if events:
                self.emit(
                    RequestCompleted(
                        self.model_name, self.version_label, reason is None, reason, size, request_ns, queue_ns,
                        input_ns, infer_ns, output_ns,
                    )
                )
            return
        any_ok = any(isinstance(r, InferenceResponse) for r in results)
        if infer_ns or any_ok:
            batch_size = sum(max(r.batch_size, 1) for r in requests)
            statistics.record_execution(batch_size, len(requests), input_ns, infer_ns, output_ns)
            if events:
                self.emit(BatchExecuted(self.model_name, self.version_label, batch_size, len(requests)))
        now = self._clock()
        for request, result in zip(requests, results, strict=True):
            queue_ns = max(start_ns + timing.held_ns - request.arrival_ns, 0) if request.arrival_ns else 0
            request_ns = max(now - request.arrival_ns, 0) if request.arrival_ns else now - start_ns
            if isinstance(result, InferenceResponse):
                statistics.record_success(request_ns, queue_ns)
                reason = None
            else:
                statistics.record_failure(request_ns)
                reason = result.reason
            if events:
                self.emit(
                    RequestCompleted(
                        self.model_name, self.version_label, reason is None, reason, max(request.batch_size, 1),
                        request_ns, queue_ns, input_ns, infer_ns, output_ns,
                    )
                )

    def warmed_up(self, inferences: int, duration_ns: int) -> None:
        """One warmup execution (one request of ``inferences``), counted as Triton counts it: an execution and a
        successful request, with no queue time."""
        self.statistics.record_execution(inferences, 1, 0, duration_ns, 0)
        self.statistics.record_success(duration_ns, 0)
        self.emit(BatchExecuted(self.model_name, self.version_label, inferences, 1))
        self.emit(
            RequestCompleted(
                self.model_name, self.version_label, True, None, inferences, duration_ns, 0, 0, duration_ns, 0
            )
        )

    def stream_ended(self, request: InferenceRequest, start_ns: int, ok: bool) -> None:
        """A decoupled request's stream ended (``ok``: without an error); its responses were counted as they
        came (:meth:`ModelStatistics.record_response`)."""
        end = self._clock()
        request_ns = max(end - request.arrival_ns, 0) if request.arrival_ns else end - start_ns
        queue_ns = max(start_ns - request.arrival_ns, 0) if request.arrival_ns else 0
        if ok:
            self.statistics.record_success(request_ns, queue_ns)
            self.statistics.record_execution(max(request.batch_size, 1), 1, 0, end - start_ns, 0)
        else:
            self.statistics.record_failure(request_ns)
        self.emit(
            RequestCompleted(
                self.model_name, self.version_label, ok, None if ok else FailureReason.BACKEND,
                max(request.batch_size, 1), request_ns, queue_ns, 0, end - start_ns, 0,
            )
        )

    def rejected(self, request: InferenceRequest, error: TritiumError) -> None:
        """A request that failed before it reached an instance (timeout, queue full, cancelled)."""
        now = self._clock()
        request_ns = max(now - request.arrival_ns, 0) if request.arrival_ns else 0
        self.statistics.record_failure(request_ns)
        self.emit(
            RequestCompleted(
                self.model_name, self.version_label, False, error.reason, max(request.batch_size, 1),
                request_ns, request_ns, 0, 0, 0,
            )
        )

    def completed(self, request: InferenceRequest, error: TritiumError | None) -> None:
        """A request the scheduler answered without an execution here (forwarded to other models)."""
        if error is not None:
            self.rejected(request, error)
            return
        now = self._clock()
        request_ns = max(now - request.arrival_ns, 0) if request.arrival_ns else 0
        self.statistics.record_success(request_ns, 0)
        self.emit(
            RequestCompleted(
                self.model_name, self.version_label, True, None, max(request.batch_size, 1),
                request_ns, 0, 0, request_ns, 0,
            )
        )
