"""The Grafana dashboard (deploy/grafana/tritium-dashboard.json): valid JSON, panels for what operators need,
and PromQL that names only metrics the Prometheus sink exports (and that promtool accepts, when present)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tritium_metrics_prometheus import EXPORTED_NAMES

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tritium-dashboard.json"

PROMQL_WORDS = {
    # aggregations, functions and keywords the dashboard may use
    "sum", "avg", "min", "max", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
    "rate", "irate", "increase", "histogram_quantile", "clamp_min", "and", "or", "unless", "offset",
}
SERIES_SUFFIXES = ("_count", "_sum", "_bucket")


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once label matchers, ranges, grouping
    clauses, variables, strings and numbers are taken out, minus PromQL's own words."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\$\w+", "", text)  # dashboard variables
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"e\d*", n)}


def exported(name: str) -> bool:
    if name in EXPORTED_NAMES:
        return True
    return any(name.endswith(s) and name[: -len(s)] in EXPORTED_NAMES for s in SERIES_SUFFIXES)


def test_dashboard_is_valid_json_with_unique_panels() -> None:
    dashboard = load()
    assert dashboard["title"] and dashboard["uid"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model", "version"} <= variables


def test_the_panels_operators_need_are_there() -> None:
    titles = {p["title"] for p in load()["panels"]}
    assert {
        "Average request latency",
        "Throughput",
        "Device utilization",
        "Queue size",
        "Average batch size",
        "Failures by reason",
    } <= titles


def test_every_query_names_only_exported_metrics() -> None:
    exprs = expressions(load())
    seen: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = {n for n in names if not exported(n)}
        assert not unknown, f"{expr!r} names metrics the sink does not export: {unknown}"
        seen |= names
    for needed in (
        "nv_inference_request_duration_us",
        "nv_inference_request_success",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_pending_request_count",
        "nv_inference_request_failure",
    ):
        assert needed in seen


def test_the_checker_itself_catches_unknown_names() -> None:
    assert metric_names('sum by (model) (rate(nv_bogus_total{model=~"$model"}[5m])) / 1e6') == {"nv_bogus_total"}
    assert not exported("nv_bogus_total")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) not installed")
def test_promtool_accepts_every_query(tmp_path: Path) -> None:
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(expressions(load())):
        concrete = expr.replace("$__rate_interval", "1m").replace("$model", ".*").replace("$version", ".*")
        rules += [f"      - record: dashboard:panel_{i}", f"        expr: {json.dumps(concrete)}"]
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(rules) + "\n")
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
