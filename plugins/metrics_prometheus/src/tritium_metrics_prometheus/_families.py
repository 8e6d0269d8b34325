"""Triton's metric families: names, types and help texts exactly as Triton 2.73 registers them.

The order of :data:`FAMILY_ORDER` is the order Triton's ``/metrics`` lists them in (its registry lists every
counter family, then gauges, then histograms, then summaries, each in registration order). Help texts are
Triton's verbatim, including its copy-pasted "Cumulative ..." help on the compute summaries.
"""

from __future__ import annotations

import attrs


@attrs.define(frozen=True, slots=True)
class Family:
    """One metric family: its name, Prometheus type and help text."""

    name: str
    type: str
    help: str


def _counter(name: str, help_text: str) -> Family:
    return Family(name, "counter", help_text)


def _gauge(name: str, help_text: str) -> Family:
    return Family(name, "gauge", help_text)


# ------------------------------------------------------------------------------------ per model
REQUEST_SUCCESS = _counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes")
REQUEST_FAILURE = _counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes")
INFERENCE_COUNT = _counter(
    "nv_inference_count", "Number of inferences performed (does not include cached requests)"
)
EXEC_COUNT = _counter(
    "nv_inference_exec_count", "Number of model executions performed (does not include cached requests)"
)
REQUEST_DURATION = _counter(
    "nv_inference_request_duration_us",
    "Cumulative inference request duration in microseconds (includes cached requests)",
)
QUEUE_DURATION = _counter(
    "nv_inference_queue_duration_us",
    "Cumulative inference queuing duration in microseconds (includes cached requests)",
)
COMPUTE_INPUT_DURATION = _counter(
    "nv_inference_compute_input_duration_us",
    "Cumulative compute input duration in microseconds (does not include cached requests)",
)
COMPUTE_INFER_DURATION = _counter(
    "nv_inference_compute_infer_duration_us",
    "Cumulative compute inference duration in microseconds (does not include cached requests)",
)
COMPUTE_OUTPUT_DURATION = _counter(
    "nv_inference_compute_output_duration_us",
    "Cumulative inference compute output duration in microseconds (does not include cached requests)",
)
PENDING_REQUESTS = _gauge(
    "nv_inference_pending_request_count", "Instantaneous number of pending requests awaiting execution per-model."
)
MODEL_LOAD_DURATION = _gauge("nv_model_load_duration_secs", "Model load time in seconds")
FIRST_RESPONSE_HISTOGRAM = Family(
    "nv_inference_first_response_histogram_ms", "histogram", "Duration from request to first response in milliseconds"
)
REQUEST_SUMMARY = Family(
    "nv_inference_request_summary_us",
    "summary",
    "Summary of inference request duration in microseconds (includes cached requests)",
)
QUEUE_SUMMARY = Family(
    "nv_inference_queue_summary_us",
    "summary",
    "Summary of inference queuing duration in microseconds (includes cached requests)",
)
COMPUTE_INPUT_SUMMARY = Family(
    "nv_inference_compute_input_summary_us", "summary", COMPUTE_INPUT_DURATION.help
)
COMPUTE_INFER_SUMMARY = Family(
    "nv_inference_compute_infer_summary_us", "summary", COMPUTE_INFER_DURATION.help
)
COMPUTE_OUTPUT_SUMMARY = Family(
    "nv_inference_compute_output_summary_us", "summary", COMPUTE_OUTPUT_DURATION.help
)

# ----------------------------------------------------------------------------------- server wide
PINNED_MEMORY_TOTAL = _gauge("nv_pinned_memory_pool_total_bytes", "Pinned memory pool total memory size, in bytes")
PINNED_MEMORY_USED = _gauge("nv_pinned_memory_pool_used_bytes", "Pinned memory pool used memory size, in bytes")
GPU_UTILIZATION = _gauge("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)")
GPU_MEMORY_TOTAL = _gauge("nv_gpu_memory_total_bytes", "GPU total memory, in bytes")
GPU_MEMORY_USED = _gauge("nv_gpu_memory_used_bytes", "GPU used memory, in bytes")
GPU_POWER_USAGE = _gauge("nv_gpu_power_usage", "GPU power usage in watts")
GPU_POWER_LIMIT = _gauge("nv_gpu_power_limit", "GPU power management limit in watts")
GPU_ENERGY = _counter("nv_energy_consumption", "GPU energy consumption in joules since the Triton Server started")
CPU_UTILIZATION = _gauge("nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]")
CPU_MEMORY_TOTAL = _gauge("nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes")
CPU_MEMORY_USED = _gauge("nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes")

LATENCY_COUNTERS = (
    REQUEST_DURATION,
    QUEUE_DURATION,
    COMPUTE_INPUT_DURATION,
    COMPUTE_INFER_DURATION,
    COMPUTE_OUTPUT_DURATION,
)
SUMMARIES = (REQUEST_SUMMARY, QUEUE_SUMMARY, COMPUTE_INPUT_SUMMARY, COMPUTE_INFER_SUMMARY, COMPUTE_OUTPUT_SUMMARY)
GPU_FAMILIES = (GPU_UTILIZATION, GPU_MEMORY_TOTAL, GPU_MEMORY_USED, GPU_POWER_USAGE, GPU_POWER_LIMIT, GPU_ENERGY)
CPU_FAMILIES = (CPU_UTILIZATION, CPU_MEMORY_TOTAL, CPU_MEMORY_USED)

FAMILY_ORDER: tuple[Family, ...] = (
    # counters
    REQUEST_SUCCESS,
    REQUEST_FAILURE,
    INFERENCE_COUNT,
    EXEC_COUNT,
    *LATENCY_COUNTERS,
    GPU_ENERGY,
    # gauges
    PENDING_REQUESTS,
    MODEL_LOAD_DURATION,
    PINNED_MEMORY_TOTAL,
    PINNED_MEMORY_USED,
    GPU_UTILIZATION,
    GPU_MEMORY_TOTAL,
    GPU_MEMORY_USED,
    GPU_POWER_USAGE,
    GPU_POWER_LIMIT,
    *CPU_FAMILIES,
    # histograms
    FIRST_RESPONSE_HISTOGRAM,
    # summaries
    *SUMMARIES,
)
"""Every family this sink can export, in Triton's output order."""

EXPORTED_NAMES: frozenset[str] = frozenset(f.name for f in FAMILY_ORDER)
"""Metric family names the sink may export (the dashboard test checks PromQL against these)."""

FAILURE_REASONS = ("BACKEND", "CANCELED", "OTHER", "REJECTED")
"""The ``reason`` label values of ``nv_inference_request_failure``, each exported from load on."""

DEFAULT_HISTOGRAM_BUCKETS_MS = (100.0, 500.0, 2000.0, 5000.0)
DEFAULT_QUANTILES = ((0.5, 0.05), (0.9, 0.01), (0.95, 0.001), (0.99, 0.001), (0.999, 0.001))
