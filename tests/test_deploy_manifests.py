"""Static checks of deploy/ and the pipeline files, offline and fast (part of ``make test``): Dockerfiles lint
clean (hadolint, error level), Compose and pipeline files match their JSON schemas, each Kustomize overlay
renders and passes ``kubernetes-validate --strict``, the drain budget adds up, Grafana provisioning points
at the dashboard, and the dependency locks cover what the images' default plugins need."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
OVERLAYS = ("overlays/cpu", "overlays/gpu", "examples/cpu-queue-autoscaling")


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.mark.parametrize("dockerfile", ["deploy/docker/Dockerfile", "deploy/docker/Dockerfile.gpu"])
def test_hadolint_clean(dockerfile: str) -> None:
    result = _run(_tool("hadolint"), "--failure-threshold", "error", "--no-color", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && echo hi\nCMD echo hi\nCOPY a b c\n")
    assert _run(_tool("hadolint"), "--failure-threshold", "error", str(bad)).returncode != 0


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.compose-spec", "deploy/compose/compose.yaml"),
        ("vendor.gitlab-ci", ".gitlab-ci.yml"),
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
    ],
)
def test_schema_valid(schema: str, path: str) -> None:
    result = _run(_tool("check-jsonschema"), "--builtin-schema", schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_catches_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  x:\n    image: a\n    ports: 8000\n")
    assert _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)).returncode != 0


def _kustomize(directory: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders Kustomize offline: kubectl kustomize)")
    result = _run(kubectl, "kustomize", str(DEPLOY / "kubernetes" / directory))
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip(f"this kubectl has no kustomize: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlay_renders_and_validates_strictly(overlay: str, version: str, tmp_path: Path) -> None:
    objects = _kustomize(overlay)
    rendered = tmp_path / "rendered.yaml"
    # ServiceMonitor is a CRD kubernetes-validate has no schema for; it is checked in test_service_monitor.
    core = [obj for obj in objects if obj["kind"] != "ServiceMonitor"]
    rendered.write_text(yaml.safe_dump_all(core))
    result = _run(_tool("kubernetes-validate"), "--strict", "-k", version, str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {o["kind"] for o in objects} >= {
        "Namespace", "ServiceAccount", "Deployment", "Service", "PersistentVolumeClaim",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
    }


def test_strict_validation_catches_an_unknown_field(tmp_path: Path) -> None:
    deployment = _by_kind(_kustomize("overlays/cpu"))["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    rendered = tmp_path / "bad.yaml"
    rendered.write_text(yaml.safe_dump(deployment))
    assert _run(_tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(rendered)).returncode != 0


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_security_context_and_probes(overlay: str) -> None:
    objects = _kustomize(overlay)
    pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    container = _container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True and "/tmp" in mounts
    namespace = _by_kind(objects)["Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_drain_budget_fits_the_grace_period(overlay: str) -> None:
    """preStop sleep + --exit-timeout-secs must end before the kubelet's SIGKILL."""
    objects = _kustomize(overlay)
    pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    container = _container(objects)
    exit_timeout = next(
        float(arg.split("=", 1)[1]) for arg in container["args"] if arg.startswith("--exit-timeout-secs=")
    )
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert float(pre_stop[1]) + exit_timeout < pod["terminationGracePeriodSeconds"]


def test_gpu_overlay_requests_a_gpu_on_gpu_nodes() -> None:
    objects = _kustomize("overlays/gpu")
    pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    container = _container(objects)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert container["image"].endswith(":gpu")
    assert _container(_kustomize("overlays/cpu"))["image"].endswith(":cpu")


def test_service_monitor_selects_the_service_metrics_port() -> None:
    kinds = _by_kind(_kustomize("overlays/cpu"))
    monitor, service = kinds["ServiceMonitor"], kinds["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert ports["metrics"]["port"] == 8002
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_queue_autoscaling_metrics_match_the_adapter_rules() -> None:
    hpa = _by_kind(_kustomize("examples/cpu-queue-autoscaling"))["HorizontalPodAutoscaler"]
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    rules = yaml.safe_load((DEPLOY / "kubernetes" / "prometheus-adapter" / "rules.yaml").read_text())
    served = {rule["name"]["as"] for rule in rules["rules"]["custom"]}
    assert wanted == served == {"tritium_queue_time_us_per_request", "tritium_pending_requests"}
    exported = (ROOT / "plugins" / "metrics_prometheus").rglob("*.py")
    names = set(re.findall(r'"(nv_[a-z_]+)"', "".join(path.read_text() for path in exported)))
    for rule in rules["rules"]["custom"]:
        assert set(re.findall(r"nv_[a-z_]+", rule["metricsQuery"] + rule["seriesQuery"])) <= names


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"])
    provisioning = DEPLOY / "compose" / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == ("prometheus", "http://prometheus:9090", True)
    assert "prometheus" in compose["services"]
    providers = yaml.safe_load((provisioning / "dashboards" / "tritium.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    dashboards_dir = (DEPLOY / "compose" / next(k for k, v in mounts.items() if v == provider["options"]["path"]))
    assert list(dashboards_dir.resolve().glob("*.json")) == [DEPLOY / "grafana" / "tritium-dashboard.json"]
    scrape = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["tritium:8002"]


def test_compose_runs_hardened_with_the_models_read_only() -> None:
    tritium = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())["services"]["tritium"]
    assert tritium["read_only"] is True and tritium["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in tritium["security_opt"]
    assert any(volume.endswith(":/models:ro") for volume in tritium["volumes"])
    exit_timeout = next(int(a.split("=")[1]) for a in tritium["command"] if a.startswith("--exit-timeout-secs="))
    assert int(tritium["stop_grace_period"].rstrip("s")) > exit_timeout
