"""The text format: Triton's (prometheus-cpp's) exact rendering, and that Prometheus parsers accept it."""

from __future__ import annotations

import math

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from tritium_metrics_prometheus._exposition import format_value, render


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (42.0, "42"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.3"),
        (1234567.5, "1234567.5"),
        (1e15, "1000000000000000"),
        (1e16, "1e+16"),
        (1e20, "1e+20"),
        (1.5e-7, "1.5e-07"),
        (math.nan, "Nan"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (-3.0, "-3"),
    ],
)
def test_values_are_written_like_prometheus_cpp(value: float, text: str) -> None:
    assert format_value(value) == text


def test_render_counter_gauge_summary_histogram() -> None:
    counter = Metric("c_total_like", "A counter", "counter")
    counter.add_sample("c_total_like", {"model": "m", "version": "1"}, 3)
    gauge = Metric("g", "A gauge", "gauge")
    gauge.add_sample("g", {}, 0.5)
    empty = Metric("nothing", "No series", "gauge")
    summary = Metric("s", "A summary", "summary")
    summary.add_sample("s_count", {"model": "m"}, 2)
    summary.add_sample("s_sum", {"model": "m"}, 7)
    summary.add_sample("s", {"model": "m", "quantile": "0.5"}, math.nan)
    histogram = Metric("h", "A histogram", "histogram")
    histogram.add_sample("h_count", {"model": "m"}, 1)
    histogram.add_sample("h_sum", {"model": "m"}, 30)
    histogram.add_sample("h_bucket", {"model": "m", "le": "100"}, 1)
    histogram.add_sample("h_bucket", {"model": "m", "le": "+Inf"}, 1)
    text = render([counter, gauge, empty, summary, histogram])
    assert text == (
        "# HELP c_total_like A counter\n"
        "# TYPE c_total_like counter\n"
        'c_total_like{model="m",version="1"} 3\n'
        "# HELP g A gauge\n"
        "# TYPE g gauge\n"
        "g 0.5\n"
        "# HELP s A summary\n"
        "# TYPE s summary\n"
        's_count{model="m"} 2\n'
        's_sum{model="m"} 7\n'
        's{model="m",quantile="0.5"} Nan\n'
        "# HELP h A histogram\n"
        "# TYPE h histogram\n"
        'h_count{model="m"} 1\n'
        'h_sum{model="m"} 30\n'
        'h_bucket{model="m",le="100"} 1\n'
        'h_bucket{model="m",le="+Inf"} 1\n'
    )
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"c_total_like", "g", "s", "h"} <= set(parsed)


def test_label_values_are_escaped() -> None:
    gauge = Metric("g", "help", "gauge")
    gauge.add_sample("g", {"model": 'a"b\\c\nd'}, 1)
    text = render([gauge])
    assert 'g{model="a\\"b\\\\c\\nd"} 1\n' in text
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels["model"] == 'a"b\\c\nd'
