"""``tritium serve --workers 2``: one answer from every worker, and the process tree survives its faults.

Requests go over fresh connections, which the kernel spreads over the workers (SO_REUSEPORT), so every check
that a state is shared (statistics, metrics, shared memory regions, model control) sees several workers.
Models are the kernel's fake identity models (``tritium.testing.fakes``), slow where a test needs requests in
flight.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritium.testing.fakes import write_identity_model

pytestmark = pytest.mark.skipif(
    not (
        __import__("importlib").util.find_spec("tritium_frontend_http")
        and __import__("importlib").util.find_spec("tritium_frontend_grpc")
    ),
    reason="the HTTP and gRPC frontends are not installed",
)
FAKES = ("tritium.testing.fakes",)
WORKERS = 2


def children(pid: int) -> dict[str, int]:
    """``{"executor": pid, "worker 0": pid, ...}`` of a supervisor."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid or b"tritium._multiproc.child" not in cmdline:
            continue
        role, index = cmdline[
            cmdline.index(b"tritium._multiproc.child") + 1 : cmdline.index(b"tritium._multiproc.child") + 3
        ]
        found["executor" if role == b"executor" else f"worker {index.decode()}"] = int(entry.name)
    return found


def reaped(pid: int) -> bool:
    """Whether ``pid`` is gone: every thread of it has exited and released its files (its listeners are
    closed). Neither an empty fd table nor a zombie leader says so while other threads are still exiting."""
    return not Path(f"/proc/{pid}").exists()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_infer(url: str, model: str, value: float, **kwargs: object) -> np.ndarray:
    client = httpclient.InferenceServerClient(url, network_timeout=30)
    try:
        data = np.full((1, 4), value, dtype=np.float32)
        inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_data_from_numpy(data)
        return client.infer(model, [inp], **kwargs).as_numpy("OUTPUT0")  # type: ignore[arg-type]
    finally:
        client.close()


def grpc_infer(url: str, model: str, value: float) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        data = np.full((1, 4), value, dtype=np.float32)
        inp = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_data_from_numpy(data)
        return client.infer(model, [inp]).as_numpy("OUTPUT0")
    finally:
        client.close()


@pytest.fixture
def server(tmp_path: Path, tritium_serve_factory):  # type: ignore[no-untyped-def]
    write_identity_model(tmp_path, "fast")
    write_identity_model(tmp_path, "slow", execute_delay_ms=400, instance_count=4)
    write_identity_model(tmp_path, "stream", decoupled=True, decoupled_repeat=3, max_batch_size=0, dims=(4,))
    serve = tritium_serve_factory(
        f"--model-repository={tmp_path}",
        f"--workers={WORKERS}",
        "--allow-client-shm=true",
        "--exit-timeout-secs=5",
        extra_plugins=FAKES,
    )
    wait_for(lambda: len(children(serve.process.pid)) == WORKERS + 1, what="every worker")
    wait_for(lambda: requests.get(f"http://{serve.http_url}/v2/health/ready", timeout=5).status_code == 200)
    # Ready through one connection says one worker listens: a test that kills a worker needs the others to be
    # listening already (on a loaded machine the second worker can still be importing).
    wait_for(lambda: every_worker_listens(serve), what="every worker's listeners")
    return serve


def every_worker_listens(serve) -> bool:  # type: ignore[no-untyped-def]
    """Whether every worker logged that its HTTP and gRPC frontends started."""
    log = serve.log()
    return all(f"worker {i}: started HTTP" in log and f"worker {i}: started gRPC" in log for i in range(WORKERS))


def test_every_worker_serves_and_statistics_and_metrics_are_one_answer(server) -> None:  # type: ignore[no-untyped-def]
    for i in range(12):
        assert http_infer(server.http_url, "fast", float(i)).tolist() == [[float(i)] * 4]
        assert grpc_infer(server.grpc_address, "fast", float(i)).tolist() == [[float(i)] * 4]
    for _ in range(4):  # asked through different workers: the same totals
        stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics("fast")
        assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 24
    metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    assert 'nv_inference_request_success{model="fast",version="1"} 24' in metrics
    assert "Traceback" not in server.log()


def test_streaming_responses_reach_their_own_stream(server) -> None:  # type: ignore[no-untyped-def]
    results: dict[int, queue.Queue] = {}

    def run(k: int) -> None:
        got: queue.Queue = queue.Queue()
        results[k] = got
        client = grpcclient.InferenceServerClient(server.grpc_address)
        client.start_stream(callback=lambda result, error: got.put((result, error)))
        inp = grpcclient.InferInput("INPUT0", [4], "FP32")
        inp.set_data_from_numpy(np.full(4, float(k), dtype=np.float32))
        client.async_stream_infer("stream", [inp], request_id=str(k))
        client.stop_stream()
        client.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for k, got in results.items():
        items = [got.get_nowait() for _ in range(got.qsize())]
        assert len(items) == 3 and all(error is None for _, error in items)
        assert all(result.as_numpy("OUTPUT0").tolist() == [float(k)] * 4 for result, _ in items)
        assert {result.get_response().id for result, _ in items} == {str(k)}


@pytest.fixture
def region() -> Iterator[tuple[str, int]]:
    key = f"/tritium-mp-{uuid.uuid4().hex[:12]}"
    fd = os.open(f"/dev/shm{key}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 64)
    os.pwrite(fd, np.arange(4, dtype=np.float32).tobytes(), 0)
    yield key, fd
    os.close(fd)
    os.unlink(f"/dev/shm{key}")


def test_shared_memory_registered_through_one_worker_is_used_by_all(server, region) -> None:  # type: ignore[no-untyped-def]
    key, fd = region
    httpclient.InferenceServerClient(server.http_url).register_system_shared_memory("in", key, 64)
    for _ in range(10):  # fresh connections: several workers
        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_shared_memory("in", 16)
        out = httpclient.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory("in", 16, offset=32)
        client.infer("fast", [inp], outputs=[out])
        assert np.frombuffer(os.pread(fd, 16, 32), dtype=np.float32).tolist() == [0.0, 1.0, 2.0, 3.0]
        os.pwrite(fd, np.zeros(4, dtype=np.float32).tobytes(), 32)
        assert (
            grpcclient.InferenceServerClient(server.grpc_address).get_system_shared_memory_status().regions["in"].key
            == key
        )
        client.close()
    httpclient.InferenceServerClient(server.http_url).unregister_system_shared_memory("in")
    for _ in range(6):
        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_shared_memory("in", 16)
        with pytest.raises(InferenceServerException, match="Unable to find shared memory region: 'in'"):
            client.infer("fast", [inp])
        assert client.get_system_shared_memory_status() == []
        client.close()


def test_a_region_unlinked_after_registering_serves_through_every_worker(server, region) -> None:  # type: ignore[no-untyped-def]
    """The client removes the object's name once registered (a single process keeps it open and serves it):
    every worker still reaches it, never a new object of the same name."""
    key, _ = region
    httpclient.InferenceServerClient(server.http_url).register_system_shared_memory("gone", key, 64)
    os.unlink(f"/dev/shm{key}")
    impostor = os.open(f"/dev/shm{key}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(impostor, 64)  # same name, other object: zeros
    os.close(impostor)
    for _ in range(10):  # fresh connections: several workers
        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_shared_memory("gone", 16)
        result = client.infer("fast", [inp]).as_numpy("OUTPUT0")
        assert result.tolist() == [[0.0, 1.0, 2.0, 3.0]]  # the registered object's bytes
        client.close()
    httpclient.InferenceServerClient(server.http_url).unregister_system_shared_memory("gone")


def test_model_control_through_one_worker_is_seen_by_every_worker(tmp_path: Path, tritium_serve_factory) -> None:  # type: ignore[no-untyped-def]
    write_identity_model(tmp_path, "m")
    serve = tritium_serve_factory(
        f"--model-repository={tmp_path}",
        f"--workers={WORKERS}",
        "--model-control-mode=explicit",
        extra_plugins=FAKES,
    )
    wait_for(lambda: len(children(serve.process.pid)) == WORKERS + 1, what="every worker")
    httpclient.InferenceServerClient(serve.http_url).load_model("m")
    for i in range(8):
        assert httpclient.InferenceServerClient(serve.http_url).is_model_ready("m")
        assert grpc_infer(serve.grpc_address, "m", float(i)).tolist() == [[float(i)] * 4]
    grpcclient.InferenceServerClient(serve.grpc_address).unload_model("m")
    for _ in range(8):
        client = httpclient.InferenceServerClient(serve.http_url)
        assert not client.is_model_ready("m")
        with pytest.raises(InferenceServerException):
            http_infer(serve.http_url, "m", 1.0)
        assert [m["state"] for m in client.get_model_repository_index()] == ["UNAVAILABLE"]


def test_a_killed_worker_is_replaced_while_the_others_serve(server) -> None:  # type: ignore[no-untyped-def]
    before = children(server.process.pid)
    os.kill(before["worker 0"], signal.SIGKILL)
    # Connections the dead worker had accepted, or that reached its listener while it was being torn down,
    # are lost with it (SO_REUSEPORT: each worker owns its listener); once it is gone, new connections reach
    # the workers still listening.
    wait_for(lambda: reaped(before["worker 0"]), timeout=10, what="the killed worker's sockets to close")
    for i in range(10):
        assert http_infer(server.http_url, "fast", float(i)).tolist() == [[float(i)] * 4]
    wait_for(
        lambda: children(server.process.pid).get("worker 0") not in (None, before["worker 0"]),
        what="the replacement worker",
    )
    assert children(server.process.pid)["executor"] == before["executor"]
    assert "worker 0" in server.log() and "starting it again" in server.log()
    wait_for(lambda: len(children(server.process.pid)) == WORKERS + 1, what="every worker")
    for i in range(10):
        assert grpc_infer(server.grpc_address, "fast", float(i)).tolist() == [[float(i)] * 4]


def test_a_killed_executor_fails_pending_requests_then_comes_back(server) -> None:  # type: ignore[no-untyped-def]
    before = children(server.process.pid)
    outcomes: list[str] = []

    def pending() -> None:
        try:
            http_infer(server.http_url, "slow", 1.0)
            outcomes.append("ok")
        except InferenceServerException as exc:
            outcomes.append(f"{exc.status()}: {exc.message()}")

    threads = [threading.Thread(target=pending) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # executing in the executor
    os.kill(before["executor"], signal.SIGKILL)
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 4
    assert all(o.startswith("503") and "executor is not available" in o for o in outcomes), outcomes
    # Not ready until the new executor has loaded the models; then everything answers again.
    wait_for(
        lambda: children(server.process.pid).get("executor") not in (None, before["executor"]), what="a new executor"
    )
    wait_for(
        lambda: requests.get(f"http://{server.http_url}/v2/health/ready", timeout=5).status_code == 200,
        what="readiness after the executor restarted",
    )
    wait_for_every_worker(server.http_url, "fast")
    for i in range(6):
        assert http_infer(server.http_url, "fast", float(i)).tolist() == [[float(i)] * 4]
        assert grpc_infer(server.grpc_address, "fast", float(i)).tolist() == [[float(i)] * 4]
    assert children(server.process.pid)["worker 0"] == before["worker 0"]  # workers kept running


def test_while_the_executor_is_away_the_server_is_live_but_not_ready(server) -> None:  # type: ignore[no-untyped-def]
    before = children(server.process.pid)
    os.kill(before["executor"], signal.SIGKILL)
    wait_for(
        lambda: requests.get(f"http://{server.http_url}/v2/health/ready", timeout=5).status_code != 200,
        timeout=10,
        what="not ready",
    )
    assert requests.get(f"http://{server.http_url}/v2/health/live", timeout=5).status_code == 200
    wait_for(
        lambda: requests.get(f"http://{server.http_url}/v2/health/ready", timeout=5).status_code == 200,
        what="ready again",
    )


def test_sigterm_under_load_answers_every_request_and_stops_every_process(server) -> None:  # type: ignore[no-untyped-def]
    tree = children(server.process.pid)
    outcomes: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                http_infer(server.http_url, "slow", 2.0)
                outcomes.append("ok")
            except InferenceServerException as exc:
                outcomes.append("refused" if exc.status() == "503" else f"other: {exc}")
            except Exception as exc:  # connection refused once the listeners closed
                outcomes.append(
                    "closed" if "Connection refused" in str(exc) or "connect" in str(exc).lower() else f"lost: {exc!r}"
                )
                return

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    took = time.monotonic() - sent
    stop.set()
    for thread in threads:
        thread.join(30)
    assert [o for o in outcomes if o.startswith(("other", "lost"))] == []
    assert outcomes.count("ok") >= 6
    assert took < 5 + 2 + 6, f"stopped {took:.1f}s after SIGTERM"
    for pid in tree.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_restarted_executor_serves_the_models_the_api_had_loaded(tmp_path: Path, tritium_serve_factory) -> None:  # type: ignore[no-untyped-def]
    write_identity_model(tmp_path, "startup")
    write_identity_model(tmp_path, "later")
    serve = tritium_serve_factory(
        f"--model-repository={tmp_path}",
        f"--workers={WORKERS}",
        "--model-control-mode=explicit",
        "--load-model=startup",
        extra_plugins=FAKES,
    )
    wait_for(lambda: len(children(serve.process.pid)) == WORKERS + 1, what="every worker")
    client = httpclient.InferenceServerClient(serve.http_url)
    client.load_model("later")
    client.unload_model("startup")
    before = children(serve.process.pid)["executor"]
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: children(serve.process.pid).get("executor") not in (None, before), what="a new executor")
    wait_for(lambda: httpclient.InferenceServerClient(serve.http_url).is_model_ready("later"), what="'later' again")
    wait_for_every_worker(serve.http_url, "later")
    assert not httpclient.InferenceServerClient(serve.http_url).is_model_ready("startup")
    assert http_infer(serve.http_url, "later", 3.0).tolist() == [[3.0] * 4]


def wait_for_every_worker(url: str, model: str) -> None:
    """After an executor restart: readiness comes from one worker, and each worker reconnects to the new
    executor on its own (until then it answers 503), so wait until a run of fresh connections all answer."""
    wait_for(lambda: all(answers(url, model) for _ in range(6)), what="every worker reconnected")


def answers(url: str, model: str) -> bool:
    """Whether ``model`` answers an inference through a new connection (False: 503, the worker that took the
    connection is not connected to the model executor yet)."""
    try:
        return bool(http_infer(url, model, 1.0).tolist() == [[1.0] * 4])
    except InferenceServerException as exc:
        if exc.status() != "503":
            raise
        return False


def test_a_model_that_runs_in_the_workers_keeps_one_set_of_statistics(tmp_path: Path, tritium_serve_factory) -> None:  # type: ignore[no-untyped-def]
    model = write_identity_model(tmp_path, "tiny")
    config = model / "config.pbtxt"
    config.write_text(
        config.read_text() + '\nparameters { key: "tritium_run_in_workers" value { string_value: "true" } }\n'
    )
    serve = tritium_serve_factory(
        f"--model-repository={tmp_path}",
        f"--workers={WORKERS}",
        "--model-control-mode=explicit",
        "--load-model=tiny",
        extra_plugins=FAKES,
    )
    wait_for(lambda: len(children(serve.process.pid)) == WORKERS + 1, what="every worker")
    time.sleep(0.5)  # the workers load their copies
    for i in range(20):
        assert http_infer(serve.http_url, "tiny", float(i)).tolist() == [[float(i)] * 4]
        assert grpc_infer(serve.grpc_address, "tiny", float(i)).tolist() == [[float(i)] * 4]
    time.sleep(0.1)  # what the copies record reaches the executor within FORWARD_INTERVAL_S (20 ms)
    for _ in range(4):
        stats = httpclient.InferenceServerClient(serve.http_url).get_inference_statistics("tiny")["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == 40
        assert stats["execution_count"] == 40 and stats["inference_count"] == 40
    metrics = requests.get(f"http://127.0.0.1:{serve.metrics_port}/metrics", timeout=5).text
    assert 'nv_inference_request_success{model="tiny",version="1"} 40' in metrics
    # The workers' copies really serve it: requests are answered while the executor is frozen.
    executor = children(serve.process.pid)["executor"]
    os.kill(executor, signal.SIGSTOP)
    try:
        for i in range(6):
            assert http_infer(serve.http_url, "tiny", float(i)).tolist() == [[float(i)] * 4]
    finally:
        os.kill(executor, signal.SIGCONT)
    httpclient.InferenceServerClient(serve.http_url).unload_model("tiny")
    for _ in range(8):
        with pytest.raises(InferenceServerException, match="unknown model"):
            http_infer(serve.http_url, "tiny", 1.0)


def _tritium_command(*args: str) -> list[str]:
    import sys

    return [str(Path(sys.executable).parent / "tritium"), "serve", "--plugin=tritium.testing.fakes", *args]


def _serve_http_only(repository: Path, port: int) -> subprocess.CompletedProcess[str]:
    """Run a multi-process server with HTTP only on 127.0.0.1:``port`` until it exits (bounded: 90 s)."""
    return subprocess.run(
        _tritium_command(
            f"--model-repository={repository}",
            f"--workers={WORKERS}",
            "--allow-grpc=false",
            "--allow-metrics=false",
            "--http-address=127.0.0.1",
            f"--http-port={port}",
        ),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_frontend_that_cannot_start_stops_the_server_with_its_reason(tmp_path: Path) -> None:
    """A port held by another process: every worker would fail again, so the server exits 1 saying why, as a
    single process does (instead of restarting workers forever)."""
    import socket

    write_identity_model(tmp_path, "m")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        done = _serve_http_only(tmp_path, port)
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr
    assert "tritium serve: error:" in done.stderr
    assert done.stderr.count("tritium serve: error:") == 1


def test_a_second_server_on_the_port_is_refused_and_the_first_keeps_all_its_traffic(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second multi-process server on the same port must not join the first one's SO_REUSEPORT group (it
    would silently take part of the traffic): it is refused as a single process is."""
    done = _serve_http_only(tmp_path, server.http_port)
    assert done.returncode == 1, done.stderr
    assert f"Socket '127.0.0.1:{server.http_port}' already in use" in done.stderr
    assert done.stderr.count("tritium serve: error:") == 1
    for i in range(16):  # fresh connections: any other listener on the port would get some of them
        assert http_infer(server.http_url, "fast", float(i)).tolist() == [[float(i)] * 4]


def test_port_zero_gives_every_worker_the_same_port(tmp_path: Path) -> None:
    """``--http-port=0 --grpc-port=0``: one port per protocol, chosen once, served by every worker; the startup
    log has the single-process model table and ready line once."""
    import re

    write_identity_model(tmp_path / "models", "fast")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _tritium_command(
                f"--model-repository={tmp_path / 'models'}",
                f"--workers={WORKERS}",
                "--allow-metrics=false",
                "--http-address=127.0.0.1",
                "--http-port=0",
                "--grpc-address=127.0.0.1",
                "--grpc-port=0",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    started = re.compile(r"worker (\d+): started (HTTP|gRPC) on 127\.0\.0\.1:(\d+)")
    try:
        wait_for(
            lambda: len(started.findall(log_path.read_text())) == 2 * WORKERS or process.poll() is not None,
            timeout=90,
            what="every worker's frontends",
        )
        found = started.findall(log_path.read_text())
        assert len(found) == 2 * WORKERS, log_path.read_text()
        ports = {protocol: {int(port) for _, p, port in found if p == protocol} for protocol in ("HTTP", "gRPC")}
        assert {len(p) for p in ports.values()} == {1}, ports  # one port per protocol, shared by all workers
        assert sorted(int(worker) for worker, _, _ in found) == sorted(list(range(WORKERS)) * 2)
        (http_port,), (grpc_port,) = ports["HTTP"], ports["gRPC"]
        assert 0 not in (http_port, grpc_port) and http_port != grpc_port
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=5).status_code == 200
        )
        for i in range(8):
            assert http_infer(f"127.0.0.1:{http_port}", "fast", float(i)).tolist() == [[float(i)] * 4]
            assert grpc_infer(f"127.0.0.1:{grpc_port}", "fast", float(i)).tolist() == [[float(i)] * 4]
        # The startup log a single process writes: the model table, then one "server is ready" line.
        wait_for(lambda: "server is ready" in log_path.read_text(), what="the ready line")
        log = log_path.read_text()
        assert log.count("server is ready (1 model(s) loaded)") == 1, log
        assert log.count("model status:") == 1 and log.index("model status:") < log.index("server is ready"), log
        # Triton's announcements, once for the server (not once per worker), with the port chosen
        assert log.count("Started HTTPService at ") == 1, log
        assert log.count(f"Started HTTPService at 127.0.0.1:{http_port}") == 1, log
        assert log.count("Started GRPCInferenceService at ") == 1, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log_path.read_text()


ISO8601_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [EWIV] \d+ "


def test_log_settings_changed_through_one_worker_apply_in_every_process(server) -> None:  # type: ignore[no-untyped-def]
    """/v2/logging reaches one worker and the executor; every worker's own lines follow too, including a
    worker started again later, and an executor started again after a crash keeps them."""
    import re

    response = requests.post(f"http://{server.http_url}/v2/logging", json={"log_format": "ISO8601"}, timeout=10)
    assert response.status_code == 200 and response.json()["log_format"] == "ISO8601", response.text
    before = children(server.process.pid)
    lost = "lost the connection to the model executor"
    offset = len(server.log())
    os.kill(before["executor"], signal.SIGKILL)  # every running worker logs that it lost the executor
    wait_for(lambda: server.log()[offset:].count(lost) >= WORKERS, what="each worker's warning")
    wait_for(lambda: requests.get(f"http://{server.http_url}/v2/health/ready", timeout=5).status_code == 200)
    offset_restart = len(server.log())
    os.kill(before["worker 1"], signal.SIGKILL)  # a new worker, taught by the restarted executor
    wait_for(lambda: "worker 1: started HTTP" in server.log()[offset_restart:], what="worker 1 started again")
    log = server.log()
    lines = [line for line in log[offset:].splitlines() if lost in line or "worker 1: started" in line]
    assert len(lines) >= WORKERS + 1, log[offset:]
    assert all(re.match(ISO8601_LINE, line) for line in lines), "\n".join(lines)
    settings = requests.get(f"http://{server.http_url}/v2/logging", timeout=10).json()
    assert settings["log_format"] == "ISO8601"  # the restarted executor kept the API's change
