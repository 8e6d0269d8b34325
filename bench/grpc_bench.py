#!/usr/bin/env python3
"""gRPC load benchmark: Tritium's gRPC frontend (native transport) against a bare grpc.aio servicer running the
same model.

    .venv/bin/python bench/grpc_bench.py [--duration 5] [--concurrency 1 16 64] [--write-results]

Both servers run model ``simple`` (INPUT0/INPUT1 INT32[16] -> sum, difference; ONNX Runtime) in their own
process on loopback:

* **baseline**: a bare ``grpc.aio`` servicer (this file, ``--baseline-server``) that decodes the raw inputs
  with numpy, runs the ONNX Runtime session and returns raw outputs: the floor of one Python process;
* **tritium**: ``tritium serve --allow-http=false`` with the model loaded explicitly.

Load:

* **unary** ``ModelInfer`` with h2load (C, one HTTP/2 connection, ``-m <concurrency>`` streams in flight),
  fed a length-prefixed serialized request (``content-type: application/grpc``, ``te: trailers``); h2load
  counts HTTP status, not grpc-status, so the same bytes are first sent through a real gRPC channel and the
  answer checked;
* **streaming** ``ModelStreamInfer`` with a Python grpc.aio load generator in its own process
  (``--stream-client``): ``concurrency`` streams, each sending its next request when the previous answer
  arrives.

It prints req/s, p50 and p99 per server, mode and concurrency, and the ratio to the baseline; with
``--write-results`` it replaces the gRPC section of bench/RESULTS.md. Runs are short (``--duration``
seconds each, 2 s warm-up excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This folder holds http.py, which would shadow the stdlib `http`: look in it last.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(_HERE)] + [_HERE]
from _harness import free_port, stop, wait_port, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- grpc:begin -->", "<!-- grpc:end -->"
MODEL = "simple"


# ------------------------------------------------------------------------------------------- messages
def infer_request_bytes() -> bytes:
    """The serialized ModelInferRequest every load generator sends (INPUT0 = 0..15, INPUT1 = ones)."""
    import numpy as np
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=MODEL)
    for name, values in (("INPUT0", np.arange(16, dtype=np.int32)), ("INPUT1", np.ones(16, dtype=np.int32))):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(values.reshape(1, 16).tobytes())
    return request.SerializeToString()


def check_response(raw: bytes) -> None:
    """Raise unless ``raw`` is the correct ModelInferResponse to :func:`infer_request_bytes`."""
    import numpy as np
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse.FromString(raw)
    outputs = {o.name: np.frombuffer(response.raw_output_contents[i], np.int32) for i, o in enumerate(response.outputs)}
    expected = np.arange(16, dtype=np.int32)
    if not (np.array_equal(outputs["OUTPUT0"], expected + 1) and np.array_equal(outputs["OUTPUT1"], expected - 1)):
        raise AssertionError(f"wrong answer: {outputs}")


# ----------------------------------------------------------------------------------- baseline server
async def baseline_server(port: int, model_path: str) -> None:
    """A bare grpc.aio servicer for ModelInfer/ModelStreamInfer running ``model_path`` with ONNX Runtime."""
    import grpc
    import numpy as np
    import onnxruntime as ort
    from tritonclient.grpc import service_pb2

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    def run(request: Any) -> Any:
        feeds = {
            tensor.name: np.frombuffer(request.raw_input_contents[i], np.int32).reshape(tuple(tensor.shape))
            for i, tensor in enumerate(request.inputs)
        }
        out0, out1 = session.run(["OUTPUT0", "OUTPUT1"], feeds)
        response = service_pb2.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
        for name, value in (("OUTPUT0", out0), ("OUTPUT1", out1)):
            response.outputs.add(name=name, datatype="INT32", shape=value.shape)
            response.raw_output_contents.append(value.tobytes())
        return response

    async def infer(request: Any, context: Any) -> Any:
        return run(request)

    async def stream(request_iterator: Any, context: Any) -> Any:
        async for request in request_iterator:
            yield service_pb2.ModelStreamInferResponse(infer_response=run(request))

    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            infer, service_pb2.ModelInferRequest.FromString, service_pb2.ModelInferResponse.SerializeToString
        ),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
            stream, service_pb2.ModelInferRequest.FromString, service_pb2.ModelStreamInferResponse.SerializeToString
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# ----------------------------------------------------------------------- frontend-only server (no kernel)
async def frontend_server(port: int, model_path: str) -> None:
    """Tritium's gRPC frontend over a minimal InferenceService that runs the session directly, as the
    baseline does: the difference to the baseline is the frontend's own cost, the difference to
    ``tritium`` the kernel's (validation, scheduling, statistics)."""
    from collections.abc import AsyncIterator

    import onnxruntime as ort
    from tritium_frontend_grpc._frontend import create_frontend

    import tritium

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    from tritium.testing.service import ReferenceModel, ReferenceService

    class SessionService(ReferenceService):
        """The kit's reference service (health, metadata ...) whose one model runs the session."""

        models = {"simple": ReferenceModel()}

        def infer_nowait(self, request: tritium.InferenceRequest) -> tritium.InferenceResponse:
            feeds = {name: tensor.data for name, tensor in request.inputs.items()}
            out0, out1 = session.run(["OUTPUT0", "OUTPUT1"], feeds)
            return tritium.InferenceResponse(
                model_name=request.model_name,
                model_version="1",
                id=request.id,
                outputs=[tritium.Tensor.from_numpy("OUTPUT0", out0), tritium.Tensor.from_numpy("OUTPUT1", out1)],
            )

        async def infer(self, request: tritium.InferenceRequest) -> tritium.InferenceResponse:
            return self.infer_nowait(request)

        async def infer_stream(self, request: tritium.InferenceRequest) -> AsyncIterator[tritium.InferenceResponse]:
            yield await self.infer(request)

    frontend = create_frontend(SessionService(), {"address": "127.0.0.1", "port": port})
    await frontend.start()
    await asyncio.Event().wait()


# ------------------------------------------------------------------------------------- stream client
async def stream_client(port: int, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """``concurrency`` ModelStreamInfer streams, one request in flight on each; latencies after warm-up."""
    import grpc
    from tritonclient.grpc import service_pb2

    body = service_pb2.ModelInferRequest.FromString(infer_request_bytes())
    latencies: list[float] = []
    stop_at = time.perf_counter() + warmup + duration
    measure_from = time.perf_counter() + warmup
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelStreamInferResponse.FromString,
        )

        async def worker() -> None:
            call = method()
            try:
                while True:
                    start = time.perf_counter()
                    if start > stop_at:
                        break
                    await call.write(body)
                    response = await call.read()
                    if response.error_message:
                        raise RuntimeError(response.error_message)
                    if start >= measure_from:
                        latencies.append(time.perf_counter() - start)
            finally:
                await call.done_writing()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began - warmup
    return _summary(latencies, max(elapsed, 1e-9))


def _summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "count": 0}

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"rps": len(latencies) / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "count": len(latencies)}


# ------------------------------------------------------------------------------------- unary (h2load)
def h2load_unary(port: int, concurrency: int, duration: float, warmup: float, body_path: Path) -> dict[str, Any]:
    """Unary ModelInfer load with h2load; per-request latencies from its --log-file."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "h2load.log"
        command = [
            "h2load",
            "-c", "1",
            "-m", str(concurrency),
            "-D", f"{duration:g}",
            "--warm-up-time", f"{warmup:g}",
            "-d", str(body_path),
            "-H", "content-type: application/grpc",
            "-H", "te: trailers",
            f"--log-file={log}",
            f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 60)
        out = done.stdout
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    statuses = {row[1] for row in rows}
    if statuses != {"200"}:
        raise RuntimeError(f"h2load saw HTTP statuses {statuses}:\n{out}")
    latencies = [int(row[2]) / 1e6 for row in rows]
    return _summary(latencies, duration)


def python_unary(port: int, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """Fallback when h2load is missing: unary calls from grpc.aio in this process."""

    async def run() -> dict[str, Any]:
        import grpc

        body = infer_request_bytes()
        latencies: list[float] = []
        stop_at = time.perf_counter() + warmup + duration
        measure_from = time.perf_counter() + warmup
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")

            async def worker() -> None:
                while (start := time.perf_counter()) < stop_at:
                    await method(body)
                    if start >= measure_from:
                        latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return _summary(latencies, duration)

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------- driver
def check_server(port: int) -> None:
    """Send the benchmark's exact request bytes through gRPC (unary and stream) and check the answers."""
    import grpc

    body = infer_request_bytes()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check_response(channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(body, timeout=30))
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        from tritonclient.grpc import service_pb2

        (raw,) = list(stream(iter([body]), timeout=30))
        message = service_pb2.ModelStreamInferResponse.FromString(raw)
        if message.error_message:
            raise RuntimeError(message.error_message)
        check_response(message.infer_response.SerializeToString())


def start_servers(repo: Path) -> dict[str, tuple[int, subprocess.Popen[bytes]]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    baseline_port, frontend_port, tritium_port = free_port(), free_port(), free_port()
    model_path = str(repo / MODEL / "1" / "model.onnx")
    baseline = subprocess.Popen(
        [sys.executable, __file__, "--baseline-server", str(baseline_port), model_path], env=env
    )
    frontend = subprocess.Popen(
        [sys.executable, __file__, "--frontend-server", str(frontend_port), model_path], env=env
    )
    tritium = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "tritium"),
            "serve",
            f"--model-repository={repo}",
            "--model-control-mode=explicit",
            f"--load-model={MODEL}",
            "--allow-http=false",
            f"--grpc-port={tritium_port}",
            "--grpc-address=127.0.0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    servers = {
        "baseline": (baseline_port, baseline),
        "frontend": (frontend_port, frontend),
        "tritium": (tritium_port, tritium),
    }
    for port, process in servers.values():
        wait_port(port, process)
    return servers


def run_benchmarks(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        subprocess.run([sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo)], check=True,
                       stdout=subprocess.DEVNULL)
        body_path = Path(tmp) / "request.grpc"
        body = infer_request_bytes()
        body_path.write_bytes(b"\x00" + struct.pack(">I", len(body)) + body)
        servers = start_servers(repo)
        try:
            for port, _ in servers.values():
                check_server(port)
            use_h2load = shutil.which("h2load") is not None
            for mode in args.modes:
                for concurrency in args.concurrency:
                    for name, (port, _) in [item for _ in range(args.repeat) for item in servers.items()]:
                        if mode == "unary":
                            result = (
                                h2load_unary(port, concurrency, args.duration, args.warmup, body_path)
                                if use_h2load
                                else python_unary(port, concurrency, args.duration, args.warmup)
                            )
                        else:
                            out = subprocess.run(
                                [sys.executable, __file__, "--stream-client", str(port), str(concurrency),
                                 str(args.duration), str(args.warmup)],
                                check=True, capture_output=True, text=True,
                            ).stdout
                            result = json.loads(out)
                        row = {"server": name, "mode": mode, "concurrency": concurrency, **result}
                        rows.append(row)  # the table keeps each server's best run (the machine is shared)
                        print(
                            f"{mode:6} c={concurrency:<3} {name:8} {row['rps']:8.0f} req/s  "
                            f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms",
                            flush=True,
                        )
            for port, _ in servers.values():
                check_server(port)  # still answering correctly after the load
        finally:
            for _, process in servers.values():
                stop(process)
    return rows


def _ratio(row: dict[str, Any], base: dict[str, Any]) -> str:
    return f"{row['rps'] / base['rps']:.0%}" if base["rps"] else "-"


def _latency(row: dict[str, Any]) -> str:
    return f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f}"


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "## gRPC frontend (`bench/grpc_bench.py`)",
        "",
        f"Model `simple` (ONNX Runtime), loopback, {args.duration:g} s per run after {args.warmup:g} s warm-up, "
        f"best of {args.repeat} interleaved runs, "
        f"on {os.cpu_count()} cores shared by server and load generator. Unary: h2load, one HTTP/2 connection "
        "with `concurrency` streams in flight. Streaming: Python grpc.aio client, `concurrency` streams with "
        "one request in flight each. **baseline**: a bare grpc.aio servicer running the same ONNX model; "
        "**frontend**: Tritium's gRPC frontend over a minimal service running the session directly (the "
        "frontend's own cost); **tritium**: `tritium serve` (frontend + kernel: validation, scheduler, "
        "statistics).",
        "",
        "| mode | concurrency | baseline req/s | frontend req/s (vs baseline) | tritium req/s (vs baseline) "
        "| baseline p50 / p99 ms | frontend p50 / p99 ms | tritium p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["mode"], r["concurrency"], r["server"])
        if key not in by_key or r["rps"] > by_key[key]["rps"]:
            by_key[key] = r
    for mode in args.modes:
        for concurrency in args.concurrency:
            base = by_key[(mode, concurrency, "baseline")]
            front = by_key[(mode, concurrency, "frontend")]
            ours = by_key[(mode, concurrency, "tritium")]

            lines.append(
                f"| {mode} | {concurrency} | {base['rps']:.0f} | {front['rps']:.0f} ({_ratio(front, base)}) | "
                f"{ours['rps']:.0f} ({_ratio(ours, base)}) | {_latency(base)} | {_latency(front)} | "
                f"{_latency(ours)} |"
            )
    lines += [
        "",
        "How to read it: both Tritium servers serve gRPC on the default native transport (the plugin's own "
        "HTTP/2; `--grpc-transport=grpcio` is grpc.aio, as the baseline). `frontend` vs `baseline` is the "
        "transport and the frontend's conversions (decode into numpy views, kernel objects, raw response "
        "encode) against grpc.aio's per-call cost; `tritium` vs `frontend` is "
        "the kernel's (validation, default scheduler, instance pool, statistics). The machine is shared with "
        "other engineers' test runs, so single runs vary by tens of percent: the table keeps each server's "
        "best of interleaved runs; rerun on a quiet machine for absolute numbers.",
        "",
        "Where the time goes: grpc.aio's own read and write cost ~200 us of CPU per message (cProfile of the "
        "baseline under the stream load); the native transport answers a small ModelInfer in ~70 us of server "
        "CPU in all (`bench/multiprocess.py` measures it per request from /proc), ModelInfer on the spot in "
        "the connection's data_received when the model runs inline; on streams such a request is answered by "
        "the stream's reader without a task of its own.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--baseline-server"]:
        asyncio.run(baseline_server(int(argv[1]), argv[2]))
        return 0
    if argv[:1] == ["--frontend-server"]:
        asyncio.run(frontend_server(int(argv[1]), argv[2]))
        return 0
    if argv[:1] == ["--stream-client"]:
        port, concurrency, duration, warmup = int(argv[1]), int(argv[2]), float(argv[3]), float(argv[4])
        print(json.dumps(asyncio.run(stream_client(port, concurrency, duration, warmup))))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", choices=("unary", "stream"), default=["unary", "stream"])
    parser.add_argument("--repeat", type=int, default=2, help="runs per server and setting (best kept)")
    parser.add_argument("--write-results", action="store_true", help="update the gRPC section of bench/RESULTS.md")
    args = parser.parse_args(argv)
    rows = run_benchmarks(args)
    section = table(rows, args)
    print()
    print(section)
    if args.write_results:
        write_section(START, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
