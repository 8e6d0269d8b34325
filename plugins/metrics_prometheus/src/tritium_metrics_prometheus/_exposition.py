"""Prometheus text format exactly as Triton writes it (prometheus-cpp's TextSerializer).

prometheus_client's own ``generate_latest`` differs from Triton's output in ways a scraper or a test can
see: it appends ``_total`` to counter names in HELP/TYPE lines and writes ``0.0`` for 0. This renderer writes
what Triton writes: family names as registered, values with 16 significant digits (``0``, ``1.5``,
``1e+20``), NaN as ``Nan``, labels in the order given, summaries as ``_count``, ``_sum`` then quantiles,
histograms as ``_count``, ``_sum`` then cumulative buckets ending with ``le="+Inf"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric


def format_value(value: float) -> str:
    """A number as prometheus-cpp writes it (``std::ostream`` with precision 16)."""
    if math.isnan(value):
        return "Nan"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.16g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(families: Iterable[Metric]) -> str:
    """The text exposition of ``families``; a family without samples is left out, as Triton does."""
    out: list[str] = []
    append = out.append
    for family in families:
        if not family.samples:
            continue
        if family.documentation:
            append(f"# HELP {family.name} {family.documentation}\n")
        append(f"# TYPE {family.name} {family.type if family.type != 'unknown' else 'untyped'}\n")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sample.labels.items())
                append(f"{sample.name}{{{labels}}} {format_value(sample.value)}\n")
            else:
                append(f"{sample.name} {format_value(sample.value)}\n")
    return "".join(out)
