"""Per-model-version statistics, counted exactly as Triton's statistics extension counts them.

``inference_count`` counts batch elements, ``execution_count`` model executions; ``success``/``fail``
durations are end-to-end request times; compute durations of a batch are charged to every request in it and
once to ``batch_stats[batch_size]``. Updated on the event loop thread only.
"""

from __future__ import annotations

import time
from time import time_ns as _time_ns
from typing import Any

import attrs


@attrs.define(slots=True)
class Duration:
    """A ``{"count", "ns"}`` statistic."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@attrs.define(slots=True)
class BatchStatistics:
    """Compute durations of the executions of one batch size."""

    batch_size: int
    compute_input: Duration = attrs.field(factory=Duration)
    compute_infer: Duration = attrs.field(factory=Duration)
    compute_output: Duration = attrs.field(factory=Duration)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "compute_input": self.compute_input.as_dict(),
            "compute_infer": self.compute_infer.as_dict(),
            "compute_output": self.compute_output.as_dict(),
        }


@attrs.define(slots=True)
class ResponseStatistics:
    """Statistics of the n-th response of decoupled requests."""

    compute_infer: Duration = attrs.field(factory=Duration)
    compute_output: Duration = attrs.field(factory=Duration)
    success: Duration = attrs.field(factory=Duration)
    fail: Duration = attrs.field(factory=Duration)
    empty_response: Duration = attrs.field(factory=Duration)
    cancel: Duration = attrs.field(factory=Duration)

    def as_dict(self) -> dict[str, Any]:
        return {
            "compute_infer": self.compute_infer.as_dict(),
            "compute_output": self.compute_output.as_dict(),
            "success": self.success.as_dict(),
            "fail": self.fail.as_dict(),
            "empty_response": self.empty_response.as_dict(),
            "cancel": self.cancel.as_dict(),
        }


@attrs.define(slots=True)
class ModelStatistics:
    """Statistics of one model version."""

    name: str
    version: str
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = attrs.field(factory=Duration)
    fail: Duration = attrs.field(factory=Duration)
    queue: Duration = attrs.field(factory=Duration)
    compute_input: Duration = attrs.field(factory=Duration)
    compute_infer: Duration = attrs.field(factory=Duration)
    compute_output: Duration = attrs.field(factory=Duration)
    cache_hit: Duration = attrs.field(factory=Duration)
    cache_miss: Duration = attrs.field(factory=Duration)
    batches: dict[int, BatchStatistics] = attrs.field(factory=dict)
    responses: dict[int, ResponseStatistics] = attrs.field(factory=dict)
    memory_usage: list[dict[str, Any]] = attrs.field(factory=list)

    def touch(self) -> None:
        self.last_inference_ms = time.time_ns() // 1_000_000

    def record_execution(
        self, batch_size: int, request_count: int, input_ns: int, infer_ns: int, output_ns: int
    ) -> None:
        """One model execution over ``request_count`` requests holding ``batch_size`` inferences."""
        self.execution_count += 1
        self.inference_count += batch_size
        stat = self.batches.get(batch_size)
        if stat is None:
            stat = self.batches[batch_size] = BatchStatistics(batch_size)
        # Duration.add spelled out: this runs once per execution on the event loop.
        d = stat.compute_input
        d.count += 1
        d.ns += input_ns
        d = stat.compute_infer
        d.count += 1
        d.ns += infer_ns
        d = stat.compute_output
        d.count += 1
        d.ns += output_ns
        d = self.compute_input
        d.count += request_count
        d.ns += input_ns * request_count
        d = self.compute_infer
        d.count += request_count
        d.ns += infer_ns * request_count
        d = self.compute_output
        d.count += request_count
        d.ns += output_ns * request_count

    def record_success(self, request_ns: int, queue_ns: int) -> None:
        d = self.success
        d.count += 1
        d.ns += request_ns
        d = self.queue
        d.count += 1
        d.ns += queue_ns
        self.last_inference_ms = _time_ns() // 1_000_000

    def record_failure(self, request_ns: int) -> None:
        self.fail.add(request_ns)
        self.touch()

    def record_response(self, index: int, *, infer_ns: int, output_ns: int, ok: bool, empty: bool) -> None:
        """The ``index``-th response (0-based) of a decoupled request."""
        stat = self.responses.get(index)
        if stat is None:
            stat = self.responses[index] = ResponseStatistics()
        if empty:
            stat.empty_response.add(infer_ns)
            return
        stat.compute_infer.add(infer_ns)
        stat.compute_output.add(output_ns)
        (stat.success if ok else stat.fail).add(infer_ns + output_ns)

    def as_dict(self) -> dict[str, Any]:
        """Triton's JSON shape of one entry of ``model_stats``."""
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_input": self.compute_input.as_dict(),
                "compute_infer": self.compute_infer.as_dict(),
                "compute_output": self.compute_output.as_dict(),
                "cache_hit": self.cache_hit.as_dict(),
                "cache_miss": self.cache_miss.as_dict(),
            },
            "response_stats": {str(k): v.as_dict() for k, v in sorted(self.responses.items())},
            "batch_stats": [self.batches[k].as_dict() for k in sorted(self.batches)],
            "memory_usage": list(self.memory_usage),
        }
