"""The server as a process: graceful shutdown, reload under load, failure isolation, exit codes.

Models are the kernel's fake identity models (``tritium.testing.fakes``, loaded into the process with the
launcher of conftest.py) so that executions can be made slow on purpose.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritium.config import model_config_to_json
from tritium.testing.fakes import identity_config, write_identity_model

pytestmark = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("tritium_frontend_http"), reason="the HTTP frontend is not installed"
)
FAKES = ("tritium.testing.fakes",)


def infer(client: httpclient.InferenceServerClient, model: str, value: float) -> np.ndarray:
    data = np.full((1, 1), value, dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
    inp.set_data_from_numpy(data)
    return client.infer(model, [inp]).as_numpy("OUTPUT0")


def test_sigterm_finishes_requests_in_flight_and_exits_zero(tmp_path: Path, tritium_serve_factory) -> None:
    write_identity_model(tmp_path, "slow", execute_delay_ms=1500)
    server = tritium_serve_factory(
        f"--model-repository={tmp_path}", extra_plugins=FAKES
    )
    client = httpclient.InferenceServerClient(server.http_url, network_timeout=30)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(infer(client, "slow", 7.0)))
    worker.start()
    time.sleep(0.5)  # the request is executing
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # Draining: still listening, not ready, new requests refused with 503 rather than a refused connection.
    ready = requests.get(f"http://{server.http_url}/v2/health/ready", timeout=5)
    assert ready.status_code == 503
    late = requests.post(f"http://{server.http_url}/v2/models/slow/infer", timeout=5, json={
        "inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]})
    assert late.status_code == 503 and "Server is stopping" in late.json()["error"]
    worker.join(30)
    assert len(results) == 1 and np.asarray(results[0]).tolist() == [[7.0]]
    assert server.process.wait(30) == 0
    assert "signal received" in server.log()


@pytest.mark.parametrize("dynamic_batching", [False, True], ids=["default-scheduler", "dynamic-batcher"])
def test_sigterm_past_the_exit_timeout_answers_every_request_and_exits_in_time(
    tmp_path: Path, tritium_serve_factory, dynamic_batching: bool
) -> None:
    """32 requests queue behind a 500 ms model; SIGTERM with --exit-timeout-secs=2: those that ran got their
    answer, the others a 503 naming the exit timeout, none is lost, and the process is gone within the timeout
    plus the shutdown margin (1 s) plus process teardown."""
    write_identity_model(
        tmp_path, "slow", execute_delay_ms=500, dynamic_batching=dynamic_batching, max_batch_size=1
    )
    server = tritium_serve_factory(
        f"--model-repository={tmp_path}", "--exit-timeout-secs=2", extra_plugins=FAKES
    )
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(value: float) -> None:
        client = httpclient.InferenceServerClient(server.http_url, network_timeout=30)
        try:
            assert infer(client, "slow", value).tolist() == [[value]]
            outcome = "ok"
        except InferenceServerException as exc:
            outcome = "timeout-error" if "exit timeout passed" in str(exc) else f"other: {exc}"
        except BaseException as exc:
            outcome = f"lost: {exc!r}"
        finally:
            client.close()
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=one, args=(float(i),)) for i in range(32)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # one executing, the rest queued
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    exited = time.monotonic() - sent
    for worker in workers:
        worker.join(30)
    assert len(outcomes) == 32
    assert [o for o in outcomes if o not in ("ok", "timeout-error")] == []
    assert 3 <= outcomes.count("ok") <= 10  # those that could run in 1 s + 2 s on one instance
    assert outcomes.count("timeout-error") >= 20
    assert exited < 2 + 1 + 2.5, f"exited {exited:.1f}s after SIGTERM"
    assert "exit timeout" in server.log()


def test_reload_under_http_load_fails_no_request(tmp_path: Path, tritium_serve_factory) -> None:
    write_identity_model(tmp_path, "m", execute_delay_ms=5, instance_count=2)
    server = tritium_serve_factory(
        f"--model-repository={tmp_path}", "--model-control-mode=explicit", "--load-model=m",
        extra_plugins=FAKES,
    )
    failures: list[BaseException] = []
    count = [0]
    stop = threading.Event()

    def load() -> None:
        client = httpclient.InferenceServerClient(server.http_url)
        while not stop.is_set():
            try:
                assert infer(client, "m", 3.0).tolist() == [[3.0]]
                count[0] += 1
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    admin = httpclient.InferenceServerClient(server.http_url)
    config = json.dumps(model_config_to_json(identity_config("m", execute_delay_ms=5, instance_count=2)))
    for _ in range(4):
        admin.load_model("m", config=config)
        time.sleep(0.2)
    stop.set()
    for w in workers:
        w.join(30)
    assert failures == []
    assert count[0] > 20


def test_broken_model_leaves_the_others_serving(tmp_path: Path, tritium_serve_factory) -> None:
    write_identity_model(tmp_path, "good")
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "config.pbtxt").write_text('backend: "identity"\ninput [ { name: "X" } ]\n')
    server = tritium_serve_factory(
        f"--model-repository={tmp_path}", "--exit-on-error=false",
        extra_plugins=FAKES,
    )
    client = httpclient.InferenceServerClient(server.http_url)
    assert infer(client, "good", 2.0).tolist() == [[2.0]]
    assert not client.is_server_ready()  # strict readiness: a model that should be loaded is not
    index = {e["name"]: e for e in client.get_model_repository_index()}
    assert index["broken"]["state"] == "UNAVAILABLE" and "config.pbtxt" in index["broken"]["reason"]
    with pytest.raises(InferenceServerException, match="broken"):
        infer(client, "broken", 1.0)


def test_exit_on_error_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "config.pbtxt").write_text("max_batch_size: -1\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tritium"), "serve", f"--model-repository={tmp_path}",
         "--allow-http=false", "--allow-grpc=false", "--allow-metrics=false"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "broken" in done.stdout + done.stderr
