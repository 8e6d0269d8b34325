"""The CPU image (deploy/docker/Dockerfile) built from this tree and run the way the deployment docs say:
non-root, read-only root filesystem, all capabilities dropped, the model repository mounted read-only;
NVIDIA's tritonclient over HTTP, HTTPS and gRPC; a drain on ``podman stop`` with requests in flight.

Runs under ``make image-test`` (podman, runc and debootstrap installed there); skipped, with the reason,
where podman cannot run containers.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[1]
HARDENED = (
    "--read-only", "--read-only-tmpfs=true", "--cap-drop=ALL", "--security-opt=no-new-privileges",
)
"""The run options docs/deployment.md gives (Kubernetes: the Deployment's securityContext)."""

SLOW_WIDTH = 1024
SLOW_LAYERS = 192  # one shared weight: depth costs compute, not payload (about 0.5 s per request)
SLOW_ROWS = 512
DRAIN_WORK_S = 6.0  # seconds of queued work the drain test puts in flight
MAX_IN_FLIGHT = 96


def _build_slow_model(repo: Path) -> None:
    """``slow``: Y = tanh(...tanh(X W) W...) over SLOW_LAYERS layers, one instance, so a few requests of a few
    hundred rows keep the server busy for seconds (requests in flight for the drain test)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = (np.random.default_rng(7).standard_normal((SLOW_WIDTH, SLOW_WIDTH)) / np.sqrt(SLOW_WIDTH)).astype(
        np.float32
    )
    nodes, last = [], "X"
    for layer in range(SLOW_LAYERS):
        nodes.append(helper.make_node("MatMul", [last, "W"], [f"m{layer}"]))
        last = "Y" if layer == SLOW_LAYERS - 1 else f"t{layer}"
        nodes.append(helper.make_node("Tanh", [f"m{layer}"], [last]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", SLOW_WIDTH])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", SLOW_WIDTH])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    (repo / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
        f'input [{{ name: "X" data_type: TYPE_FP32 dims: [-1, {SLOW_WIDTH}] }}]\n'
        f'output [{{ name: "Y" data_type: TYPE_FP32 dims: [-1, {SLOW_WIDTH}] }}]\n'
        "instance_group [{ kind: KIND_CPU count: 1 }]\n"
    )


def _slow_reference(x: np.ndarray, repo: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    weight = numpy_helper.to_array(onnx.load(str(repo / "slow" / "1" / "model.onnx")).graph.initializer[0])
    for _ in range(SLOW_LAYERS):
        x = np.tanh(x @ weight)
    return x


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repository plus ``slow``, world-readable (the container's user is uid 10001)."""
    repo = tmp_path_factory.mktemp("image-repository") / "models"
    subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo)], check=True)
    _build_slow_model(repo)
    for path in [repo.parent, *repo.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    repo.chmod(0o755)
    return repo


def _ports(podman: Any, name: str) -> dict[int, int]:
    """Container port -> the host port podman chose on 127.0.0.1."""
    mapping = json.loads(podman("inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout)
    return {int(key.split("/")[0]): int(value[0]["HostPort"]) for key, value in mapping.items() if value}


def _start(podman: Any, image: str, repository: Path, *args: str, mounts: tuple[str, ...] = ()) -> tuple[str, dict]:
    name = podman.run_detached(
        *HARDENED,
        "-v", f"{repository}:/models:ro",
        *mounts,
        "-p", "127.0.0.1::8000", "-p", "127.0.0.1::8001", "-p", "127.0.0.1::8002",
        image,
        "serve", "--model-repository=/models", *args,
    )
    return name, _ports(podman, name)


def _simple_inputs(module: Any) -> list[Any]:
    data = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = []
    for input_name in ("INPUT0", "INPUT1"):
        tensor = module.InferInput(input_name, [1, 16], "INT32")
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    return inputs


def test_image_metadata(podman: Any, cpu_image: str) -> None:
    image = json.loads(podman("inspect", cpu_image).stdout)[0]
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tritium"]
    assert config["Cmd"] == ["serve", "--model-repository=/models"]
    assert {"8000/tcp", "8001/tcp", "8002/tcp"} <= set(config["ExposedPorts"])
    assert image["Healthcheck"]["Test"][-1] == "/opt/tritium/healthcheck.py"
    # No build tooling in the runtime image: no pip in the venv, no compiler.
    listing = podman("run", "--rm", "--entrypoint", "/bin/sh", cpu_image, "-c",
                     "ls /opt/tritium/bin; command -v gcc || true").stdout.split()
    assert "tritium" in listing and "pip" not in listing and "gcc" not in " ".join(listing)


def test_serves_http_grpc_metrics_hardened(podman: Any, cpu_image: str, repository: Path) -> None:
    name, ports = _start(podman, cpu_image, repository, "--model-control-mode=explicit", "--load-model=simple")
    podman.wait_healthy(name, f"http://127.0.0.1:{ports[8000]}/v2/health/ready")
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    assert "tritium" in podman("exec", name, "cat", "/proc/1/cmdline").stdout  # the server is PID 1
    write = podman("exec", name, "touch", "/opt/tritium/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    assert podman("exec", name, "touch", "/models/x", check=False).returncode != 0
    assert podman("exec", name, "touch", "/tmp/x").returncode == 0
    assert podman("healthcheck", "run", name, check=False).returncode == 0

    http = httpclient.InferenceServerClient(f"127.0.0.1:{ports[8000]}")
    result = http.infer("simple", _simple_inputs(httpclient))
    assert result.as_numpy("OUTPUT0").tolist() == [list(range(0, 32, 2))]
    http.close()
    with grpcclient.InferenceServerClient(f"127.0.0.1:{ports[8001]}") as grpc:
        assert grpc.is_model_ready("simple")
        assert grpc.infer("simple", _simple_inputs(grpcclient)).as_numpy("OUTPUT1").tolist() == [[0] * 16]
    metrics = requests.get(f"http://127.0.0.1:{ports[8002]}/metrics", timeout=10).text
    assert 'nv_inference_request_success{model="simple",version="1"} 2' in metrics


def test_https_and_mutual_tls(podman: Any, cpu_image: str, repository: Path, tls_certificates: dict) -> None:
    certs = tls_certificates["ca"].parent
    certs.chmod(0o755)  # the container's user (uid 10001) reads the mounted files
    name, ports = _start(
        podman, cpu_image, repository,
        "--model-control-mode=explicit", "--load-model=simple",
        "--http-ssl-mutual=true", "--http-server-cert=/certs/server.crt", "--http-server-key=/certs/server.key",
        "--http-root-cert=/certs/ca.crt", "--http-restricted-api=inference:infer-key=go",
        mounts=("-v", f"{certs}:/certs:ro", "-e", "TRITIUM_HEALTHCHECK_URL=https://127.0.0.1:8000/v2/health/ready"),
    )
    ssl_options = {
        "ca_certs": str(tls_certificates["ca"]),
        "certfile": str(tls_certificates["client"]),
        "keyfile": str(tls_certificates["client_key"]),
    }
    url = f"https://127.0.0.1:{ports[8000]}/v2/health/ready"
    podman.wait_healthy(
        name, url, verify=str(tls_certificates["ca"]),
        cert=(str(tls_certificates["client"]), str(tls_certificates["client_key"])),
    )
    client = httpclient.InferenceServerClient(f"127.0.0.1:{ports[8000]}", ssl=True, ssl_options=ssl_options)
    result = client.infer("simple", _simple_inputs(httpclient), headers={"infer-key": "go"})
    assert result.as_numpy("OUTPUT0").tolist() == [list(range(0, 32, 2))]
    client.close()
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=str(tls_certificates["ca"]), timeout=5)  # no client certificate
    # The image's HEALTHCHECK follows TRITIUM_HEALTHCHECK_URL. With mutual TLS it cannot present a client
    # certificate, so it reports unhealthy: deployments with mTLS probe over TCP or gRPC instead (docs).
    assert podman("healthcheck", "run", name, check=False).returncode != 0


def test_gpu_dockerfile_installs_python_and_runs(podman: Any, test_bases: dict[str, str]) -> None:
    """Dockerfile.gpu on a Debian base without Python (it installs python3.11 itself) with a small plugin set:
    the same multi-stage, hash-locked, non-root build from the gpu lock (nvidia-ml-py for GPU metrics). The
    CUDA frameworks (onnxruntime-gpu, torch) are not downloaded here, and no GPU is needed to start it."""
    image = "localhost/tritium-test/tritium:gpu-structure"
    started = time.monotonic()
    podman(
        "build", "--format", "docker", "--layers", "-f", str(ROOT / "deploy" / "docker" / "Dockerfile.gpu"),
        "--build-arg", f"BASE_IMAGE={test_bases['debian']}",
        "--build-arg", "PLUGINS=frontend_http metrics_prometheus[gpu]", "-t", image, str(ROOT), timeout=1500,
    )
    print(f"built {image} in {time.monotonic() - started:.1f} s")
    name = podman.run_detached(*HARDENED, "-p", "127.0.0.1::8000", "-p", "127.0.0.1::8002", image,
                               "serve", "--model-repository=/models", "--model-control-mode=explicit")
    ports = _ports(podman, name)
    podman.wait_healthy(name, f"http://127.0.0.1:{ports[8000]}/v2/health/ready")
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", name, "python3.11", "-c", "import pynvml").returncode == 0
    assert requests.get(f"http://127.0.0.1:{ports[8002]}/metrics", timeout=10).status_code == 200
    assert podman("healthcheck", "run", name, check=False).returncode == 0


def test_end_to_end_tests_pass_inside_the_image(podman: Any, cpu_image: str) -> None:
    """CI's "test inside the image" step (deploy/docker/test-in-image.sh) on the hardened container: the
    checkout mounted read-only, test tools in /tmp, the image's own tritium serving."""
    result = podman(
        "run", "--rm", *HARDENED, "-v", f"{ROOT}:/src:ro", "--workdir", "/src", "--entrypoint", "/bin/sh",
        cpu_image, "deploy/docker/test-in-image.sh", timeout=900, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [""]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", summary[0]) and "failed" not in summary[0], summary


@attrs.frozen
class Drain:
    """What one ``podman stop`` with requests in flight looked like from outside."""

    results: list[Any]
    expected: np.ndarray
    single_request_s: float
    ready_after_sigterm: Any
    new_request_after_sigterm: Any
    stop_s: float
    exit_code: int
    exit_timeout: int
    log: str

    def describe(self) -> str:
        return (
            f"one request {self.single_request_s:.2f} s; readiness after SIGTERM: {self.ready_after_sigterm}; "
            f"new request after SIGTERM: {self.new_request_after_sigterm}; stopped in {self.stop_s:.1f} s, "
            f"exit code {self.exit_code}\n{self.log}"
        )


def _status(call: Any) -> Any:
    """The HTTP status of ``call()``, or the name of the exception it raised (e.g. ConnectionError)."""
    try:
        return call().status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def _wait_pending(metrics_url: str, model: str, count: int, timeout: float) -> None:
    """Until ``nv_inference_pending_request_count`` of ``model`` reaches ``count`` (or ``timeout`` passes: the
    assertions then show what the drain saw)."""
    pattern = re.compile(rf'^nv_inference_pending_request_count{{model="{model}",version="1"}} (\d+)', re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.search(requests.get(metrics_url, timeout=5).text)
        if found and int(found.group(1)) >= count:
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def drain(podman: Any, cpu_image: str, repository: Path) -> Drain:
    """Start the image serving ``slow``, put requests in flight (one executing, the others queued: several
    seconds of work), ``podman stop`` it (SIGTERM to PID 1), probe readiness and a new request while the
    others are still running, and collect every outcome."""
    exit_timeout = 30
    name, ports = _start(
        podman, cpu_image, repository,
        "--model-control-mode=explicit", "--load-model=slow", f"--exit-timeout-secs={exit_timeout}",
    )
    base = f"http://127.0.0.1:{ports[8000]}"
    podman.wait_healthy(name, f"{base}/v2/health/ready")
    x = np.random.default_rng(3).standard_normal((SLOW_ROWS, SLOW_WIDTH)).astype(np.float32)

    def infer() -> Any:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{ports[8000]}", network_timeout=120)
        try:
            request = httpclient.InferInput("X", list(x.shape), "FP32")
            request.set_data_from_numpy(x)
            return client.infer("slow", [request]).as_numpy("Y")
        except Exception as exc:
            return exc
        finally:
            client.close()

    started = time.monotonic()
    infer()
    single = time.monotonic() - started
    # Enough requests for several seconds of queued work on this machine, whatever its speed (a fast CI runner
    # finishes six requests before the probes below are sent, and the drain is over before it can be observed).
    in_flight = min(MAX_IN_FLIGHT, max(6, math.ceil(DRAIN_WORK_S / max(single, 1e-3))))
    results: list[Any] = [None] * in_flight

    def run(index: int) -> None:
        results[index] = infer()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(in_flight)]
    for thread in threads:
        thread.start()
    # The first is executing, the others queued behind it: all of them inside the server before SIGTERM.
    _wait_pending(f"http://127.0.0.1:{ports[8002]}/metrics", "slow", in_flight - 1, timeout=single * in_flight / 2)
    stop_started = time.monotonic()
    stopper = subprocess.Popen(
        ["podman", "stop", "-t", str(exit_timeout + 30), name],
        env=podman.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(0.5)
    ready = _status(lambda: requests.get(f"{base}/v2/health/ready", timeout=5))
    body = {"inputs": [{"name": "X", "shape": [1, SLOW_WIDTH], "datatype": "FP32", "data": [0.0] * SLOW_WIDTH}]}
    new = _status(lambda: requests.post(f"{base}/v2/models/slow/infer", json=body, timeout=30))
    for thread in threads:
        thread.join(120)
    stopper.communicate(timeout=exit_timeout + 60)
    drain = Drain(
        results=results,
        expected=_slow_reference(x, repository),
        single_request_s=single,
        ready_after_sigterm=ready,
        new_request_after_sigterm=new,
        stop_s=time.monotonic() - stop_started,
        exit_code=int(podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()),
        exit_timeout=exit_timeout,
        log=podman("logs", "--tail", "8", name, check=False).stderr,
    )
    print(drain.describe())
    return drain


def test_drain_finishes_every_request_in_flight(drain: Drain) -> None:
    """None lost: every request in flight at SIGTERM answers, with the right numbers."""
    failures = [r for r in drain.results if not isinstance(r, np.ndarray)]
    assert not failures, f"requests lost in the drain: {failures}\n{drain.describe()}"
    for result in drain.results:
        np.testing.assert_allclose(result, drain.expected, rtol=1e-3, atol=1e-4)


def test_drain_exits_cleanly_within_the_exit_timeout(drain: Drain) -> None:
    assert drain.exit_code == 0, drain.describe()
    assert drain.stop_s < drain.exit_timeout + 5, drain.describe()


def test_drain_stops_admitting_at_once(drain: Drain) -> None:
    """Readiness is false and new requests are refused while the drain runs (a load balancer stops sending)."""
    assert drain.ready_after_sigterm != 200, drain.describe()
    assert drain.new_request_after_sigterm != 200, drain.describe()


def test_drain_answers_503_while_draining(drain: Drain) -> None:
    """Issue 16: during the drain readiness answers 503 and new requests get 503 (connections stay open)."""
    assert (drain.ready_after_sigterm, drain.new_request_after_sigterm) == (503, 503), drain.describe()
