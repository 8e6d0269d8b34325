"""deploy/compose brought up with podman-compose: Tritium (the CPU image built from this tree) and Prometheus
(a test image from Debian's package, since registries are not reachable here), and Prometheus seen scraping
Tritium. Grafana has no package to build a test image from; its provisioning files are checked statically
in test_deploy_manifests.py. Runs under ``make image-test``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example ONNX models the default CPU image serves (the full example repository also holds models
    for backends that image leaves out)."""
    built = tmp_path_factory.mktemp("compose-examples") / "models"
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(built)], check=True)
    repo = tmp_path_factory.mktemp("compose-repository") / "models"
    for model in ("simple", "identity_fp32"):
        shutil.copytree(built / model, repo / model)
    for path in [repo.parent, repo, *repo.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return repo


def _compose() -> list[str]:
    found = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
    if not Path(found).exists():
        pytest.skip("podman-compose is not installed (pip install podman-compose; make image-test does)")
    return [found]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_compose_up_prometheus_scrapes_tritium(
    podman: Any, cpu_image: str, test_bases: dict[str, str], repository: Path
) -> None:
    project = f"tritium-test-{os.getpid()}"
    ports = {name: _free_port() for name in ("TRITIUM_HTTP_PORT", "TRITIUM_GRPC_PORT", "TRITIUM_METRICS_PORT",
                                             "PROMETHEUS_PORT", "GRAFANA_PORT")}
    env = {
        **podman.env,
        **{name: str(port) for name, port in ports.items()},
        "TRITIUM_IMAGE": cpu_image,
        "PROMETHEUS_IMAGE": test_bases["prometheus"],
        "MODEL_REPOSITORY": str(repository),
    }
    compose = [*_compose(), "-p", project, "-f", str(COMPOSE_FILE)]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*compose, *args], env=env, capture_output=True, text=True, timeout=180,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    started = time.monotonic()
    try:
        run("up", "-d", "--no-build", "tritium", "prometheus")
        tritium = f"http://127.0.0.1:{ports['TRITIUM_HTTP_PORT']}"
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        deadline = time.monotonic() + 120
        up: Any = None
        while time.monotonic() < deadline:
            try:
                ready = requests.get(f"{tritium}/v2/health/ready", timeout=2).status_code == 200
                answer = requests.get(f"{prometheus}/api/v1/query", params={"query": 'up{job="tritium"}'}, timeout=2)
                up = answer.json()["data"]["result"]
                if ready and up and up[0]["value"][1] == "1":
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(1)
        logs = run("logs", check=False)
        assert up and up[0]["value"][1] == "1", f"Prometheus does not see Tritium up: {up}\n{logs.stdout[-3000:]}"
        # Tritium's own series arrive through the scrape: the model-ready gauge of a served model.
        series = requests.get(f"{prometheus}/api/v1/series", params={"match[]": "nv_inference_count"}, timeout=5)
        assert {s["model"] for s in series.json()["data"]} >= {"simple"}
        targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        assert [t["scrapeUrl"] for t in targets] == ["http://tritium:8002/metrics"]
        print(f"compose up and first scrape in {time.monotonic() - started:.1f} s")
    finally:
        run("down", "-t", "5", check=False)
        leftovers = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={project}", "-q").stdout
        assert not leftovers.strip(), f"containers left running: {leftovers}"
