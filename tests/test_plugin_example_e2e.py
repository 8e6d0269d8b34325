"""End to end: the out-of-tree example plugin (examples/plugin_example, backend ``repeat``) is discovered by
``tritium plugins`` and served by ``tritium serve`` (gRPC streaming and HTTP /infer through NVIDIA's
tritonclient) and by the in-process API (``tritium.Server`` + ``service.infer_stream``)."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import tritium

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tritium_backend_repeat") is None,
    reason="the example plugin is not installed: pip install -e 'examples/plugin_example[dev]'",
)

_SCRIPT = Path(sys.executable).with_name("tritium")
TRITIUM = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from tritium._cli.commands import main; sys.exit(main())"]
)
HAVE_GRPC = importlib.util.find_spec("tritium_frontend_grpc") is not None
HAVE_HTTP = importlib.util.find_spec("tritium_frontend_http") is not None
STARTUP_TIMEOUT_S = 60.0

DECOUPLED_CONFIG = """
name: "repeat_int32"
backend: "repeat"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] optional: true },
  { name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] optional: true }
]
output [
  { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },
  { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] }
]
"""


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """``repeat_int32`` (decoupled, full config) and ``repeat_auto`` (no config.pbtxt at all: the backend is
    found from the file name model.repeat and the config auto-completed, not decoupled)."""
    repo = tmp_path / "models"
    (repo / "repeat_int32" / "1").mkdir(parents=True)
    (repo / "repeat_int32" / "config.pbtxt").write_text(DECOUPLED_CONFIG)
    (repo / "repeat_int32" / "1" / "model.repeat").write_text("{}")
    (repo / "repeat_auto" / "1").mkdir(parents=True)
    (repo / "repeat_auto" / "1" / "model.repeat").write_text("{}")
    return repo


def test_tritium_plugins_lists_the_example() -> None:
    result = subprocess.run([*TRITIUM, "plugins"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    line = next((row for row in result.stdout.splitlines() if row.startswith("backend_repeat")), None)
    assert line is not None, result.stdout
    assert "tritium-backend-repeat" in line and "backend:repeat" in line and " ok " in f" {line} "


# ------------------------------------------------------------------------------------- tritium serve
def _serve_flags(free_ports: Callable[[int], list[int]]) -> list[str]:
    """Port flags for every frontend/sink installed (free ports, so parallel runs never collide)."""
    help_text = subprocess.run(
        [*TRITIUM, "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    names = [f for f in sorted(set(re.findall(r"--[a-z]+-port\b", help_text))) if not f.startswith("--reuse")]
    flags = []
    for flag, port in zip(names, free_ports(len(names)), strict=True):
        flags += [flag, str(port)]
    return flags


@pytest.fixture
def served(repository: Path, tmp_path: Path, free_ports: Callable[[int], list[int]]) -> Iterator[dict[str, int]]:
    """A ``tritium serve`` subprocess on the repository; yields the ports by flag name. A port chosen free can
    be taken by another process before the server binds it: the server is then started again on new ports."""
    for _attempt in range(3):
        flags = _serve_flags(free_ports)
        ports = {flags[i]: int(flags[i + 1]) for i in range(0, len(flags), 2)}
        log = (tmp_path / "server.log").open("w")
        process = subprocess.Popen(
            [*TRITIUM, "serve", "--model-repository", str(repository), *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if not _lost_a_port(process, ports, tmp_path / "server.log"):
            break
        log.close()
    try:
        yield ports
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if process.returncode not in (0, -15):
            print((tmp_path / "server.log").read_text())


def _lost_a_port(process: subprocess.Popen[bytes], ports: dict[str, int], log: Path) -> bool:
    """Wait until the server listens on its HTTP or gRPC port; True when it exited first because one of its
    ports was taken meanwhile (any other outcome is the test's to judge)."""
    listening = [ports[f] for f in ("--http-port", "--grpc-port") if f in ports]
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and listening:
        if process.poll() is not None:
            return "address already in use" in log.read_text(errors="replace")
        try:
            with socket.create_connection(("127.0.0.1", listening[0]), timeout=0.5):
                return False
        except OSError:
            time.sleep(0.1)
    return False


def _wait_ready(client: object) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if client.is_server_ready():  # type: ignore[attr-defined]
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError("tritium serve did not become ready")


@pytest.mark.skipif(not HAVE_GRPC, reason="the gRPC frontend (tritium_frontend_grpc) is not installed")
def test_serve_streams_repeat_over_grpc(served: dict[str, int]) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{served['--grpc-port']}")
    _wait_ready(client)
    assert client.is_model_ready("repeat_int32")
    responses: queue.Queue[tuple[object, object]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        values = np.array([4, 5, 6], dtype=np.int32)
        inputs = [
            grpcclient.InferInput("IN", [3], "INT32"),
            grpcclient.InferInput("DELAY", [3], "UINT32"),
            grpcclient.InferInput("WAIT", [1], "UINT32"),
        ]
        inputs[0].set_data_from_numpy(values)
        inputs[1].set_data_from_numpy(np.array([10, 0, 5], dtype=np.uint32))
        inputs[2].set_data_from_numpy(np.array([5], dtype=np.uint32))
        client.async_stream_infer("repeat_int32", inputs, request_id="r1", enable_empty_final_response=True)
        got = []
        while True:
            result, error = responses.get(timeout=30)
            assert error is None, error
            response = result.get_response()
            final = response.parameters["triton_final_response"].bool_param
            if response.outputs:
                got.append((int(result.as_numpy("OUT")[0]), int(result.as_numpy("IDX")[0])))
            if final:
                assert not response.outputs, "the final flag comes in an empty response"
                break
    finally:
        client.stop_stream()
        client.close()
    assert got == [(4, 0), (5, 1), (6, 2)]


@pytest.mark.skipif(not HAVE_HTTP, reason="the HTTP frontend (tritium_frontend_http) is not installed")
def test_serve_answers_the_auto_completed_model_over_http(served: dict[str, int]) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{served['--http-port']}")
    try:
        _wait_ready(client)
        config = client.get_model_config("repeat_auto")
        assert config["backend"] == "repeat"
        assert [i["name"] for i in config["input"]] == ["IN", "DELAY", "WAIT"]
        values = np.array([7, 8], dtype=np.int32)
        item = httpclient.InferInput("IN", [2], "INT32")
        item.set_data_from_numpy(values)
        result = client.infer("repeat_auto", [item])
        assert result.as_numpy("OUT").tolist() == [7, 8]
        assert result.as_numpy("IDX").tolist() == [0, 1]
        with pytest.raises(Exception, match="decoupled"):
            client.infer("repeat_int32", [item])
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ in-process
async def test_in_process_server_streams_repeat(repository: Path) -> None:
    options = tritium.ServerOptions(model_repositories=(str(repository),))
    async with tritium.Server(options) as server:
        assert server.service.is_decoupled("repeat_int32")
        request = tritium.InferenceRequest(
            model_name="repeat_int32",
            inputs={"IN": tritium.Tensor("IN", tritium.DataType.INT32, np.array([1, 2, 3], dtype=np.int32))},
            parameters={"triton_enable_empty_final_response": True},
        )
        responses = [r async for r in server.service.infer_stream(request)]
        once = await server.service.infer(
            tritium.InferenceRequest(
                model_name="repeat_auto",
                inputs={"IN": tritium.Tensor("IN", tritium.DataType.INT32, np.array([9], dtype=np.int32))},
            )
        )
    data = [r for r in responses if r.outputs]
    assert [int(dict((t.name, t.data) for t in r.outputs)["OUT"][0]) for r in data] == [1, 2, 3]
    assert [r.final for r in responses] == [False, False, False, True]
    assert {t.name: t.data.tolist() for t in once.outputs} == {"OUT": [9], "IDX": [0]}
