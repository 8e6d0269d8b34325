"""Prometheus metrics for Tritium, with Triton's metric names, types, help texts and labels.

The ``prometheus`` metrics sink (entry point ``metrics_prometheus``) serves ``GET /metrics`` on
``--metrics-port`` (8002): per-model ``nv_inference_*`` counters and gauges (from load on, 0-valued),
optional latency summaries and first-response histograms (``--metrics-config``), and CPU and GPU gauges.
See docs/metrics.md. Importing this package is cheap; :class:`PrometheusSink` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXPORTED_NAMES", "MetricsConfig", "PrometheusSink", "SinkSettings"]


def __getattr__(name: str) -> Any:
    if name == "PrometheusSink":
        from tritium_metrics_prometheus._sink import PrometheusSink

        return PrometheusSink
    if name in ("MetricsConfig", "SinkSettings"):
        from tritium_metrics_prometheus import _config

        return getattr(_config, name)
    if name == "EXPORTED_NAMES":
        from tritium_metrics_prometheus._families import EXPORTED_NAMES

        return EXPORTED_NAMES
    raise AttributeError(f"module 'tritium_metrics_prometheus' has no attribute {name!r}")
