#!/usr/bin/env python3
"""Multi-process serving benchmark (issue 12): `tritium serve` with its default worker processes, with
``--workers 1`` and real Triton 2.51, side by side in one run; then req/s against the number of workers.

    .venv/bin/python bench/multiprocess.py [--duration 2] [--warmup 1] [--repeats 3]
        [--concurrency 1 16 64] [--batch-concurrency 64 128] [--workers-list 1 2 4 8 16]
        [--scaling-concurrency 64] [--parts tiny batched scaling] [--triton VENV | --no-triton] [--no-write]

Every server loads the same two models and stays up for the whole run; each point is measured
``--repeats`` times with the order of the servers rotated between repeats, and the tables keep medians.

1. **Tiny model**: the example ``simple`` (INT32 [1,16] x2 -> sum, difference; ONNX Runtime). HTTP JSON with
   wrk (``connections = concurrency``, one thread) and unary gRPC ``ModelInfer`` with raw tensors with h2load
   (``-c concurrency -m 1``: one HTTP/2 connection per client). With several workers the kernel spreads
   *connections* over the processes listening with SO_REUSEPORT, never the streams of one connection, so a
   single multiplexed connection (``-c 1 -m 64``, what bench/grpc_bench.py sends) would reach one worker only.
2. **Batched model**: an MLP 512-2048-2048-512 (bench/_models.py ``mlp``, FP32, ~5 M multiply-adds per row)
   under ``dynamic_batching { max_queue_delay_microseconds: 2000 }``, max_batch_size 64, unary gRPC with
   h2load as above.
3. **Scaling**: ``--workers N`` for every N of ``--workers-list`` (default: 1, 2, 4, ... up to the usable
   cores, at least 1 and 2) on both models, at ``--scaling-concurrency``.

Servers: **default** (``tritium serve`` without ``--workers``: whatever the shipped default is, today one
process), **local** (``--workers 0``: one worker per usable core plus the model executor, tiny model only, its
config with ``tritium_run_in_workers``: each worker runs its own copy, no hop; ``--no-local`` skips it),
**w1** (``--workers 1``: the single process, stated explicitly), **wN** (scaling) and **triton** (real Triton
2.51 from ``--triton VENV``, default ``$TRITIUM_BENCH_TRITON`` or /tmp/triton-ref, prepared as
../shared/reference/real-triton.md says; it has only the Python backend, so both models run there as
Python-backend twins running the same .onnx files with onnxruntime, bench/_triton.py).

Checks: before and after the load every server answers both models correctly over gRPC; h2load sees only
HTTP status, so the statistics extension's success/fail counts are read around every run and a run with
failures is reported. CPU per request: user+system time of every process of the server (from /proc, the
supervisor, executor and each worker separately) and of the load generator (getrusage) over the run,
divided by the requests the server's statistics counted.

Targets (issue 12): default >= Triton at concurrency 16 and 64 (HTTP JSON and gRPC raw, tiny model) and at
64 and 128 (batched model over gRPC); p50 latency at concurrency 1 of default within 10 % of --workers 1;
scaling >= 5x the one-worker req/s at 16 workers (measurable only with 16 usable cores).
Results go to bench/RESULTS.md between the ``multiprocess`` markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shadows the stdlib package ``http`` when this folder is on the import path: drop it first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import attrs  # noqa: E402
import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib and site-packages
from _harness import WRK, free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402
from _models import mlp  # noqa: E402
from _triton import check_venv, start_triton  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- multiprocess:begin -->", "<!-- multiprocess:end -->"
H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
TINY, BATCHED = "simple", "mlp"
HTTP, GRPC = "HTTP JSON", "gRPC raw"
DEFAULT, W1, TRITON = "default", "w1", "triton"
LOCAL = "local"
IN_WORKERS = 'parameters { key: "tritium_run_in_workers" value { string_value: "true" } }'
MLP_CONFIG = """\
name: "mlp"
{platform}
max_batch_size: 64
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 512 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 512 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
"""
TWIN_MODEL = '''\
"""Benchmark twin: runs net.onnx with onnxruntime inside Triton's Python backend, every input and output of
the config, the requests of a batch concatenated and the outputs sliced back."""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        path = os.path.join(os.path.dirname(__file__), "net.onnx")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
        feeds = {}
        for k, name in enumerate(self.inputs):
            parts = [a[k] for a in arrays]
            feeds[name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        results = self.session.run(self.outputs, feeds)
        responses, offset = [], 0
        for a in arrays:
            size = a[0].shape[0]
            tensors = [pb_utils.Tensor(n, r[offset : offset + size]) for n, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(tensors))
            offset += size
        return responses
'''


# ------------------------------------------------------------------------------------------ requests
def tiny_inputs() -> dict[str, np.ndarray]:
    return {"INPUT0": np.arange(16, dtype=np.int32).reshape(1, 16), "INPUT1": np.ones((1, 16), np.int32)}


def mlp_input() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((1, 512)).astype(np.float32)


def grpc_request(model: str) -> bytes:
    """The serialized ModelInferRequest h2load sends for ``model`` (raw input contents)."""
    from tritonclient.grpc import service_pb2  # type: ignore[import-untyped]

    inputs = tiny_inputs() if model == TINY else {"INPUT0": mlp_input()}
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        request.inputs.add(name=name, datatype="INT32" if array.dtype == np.int32 else "FP32", shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return bytes(request.SerializeToString())


def expected(model: str, session: Any) -> dict[str, np.ndarray]:
    if model == TINY:
        a, b = tiny_inputs().values()
        return {"OUTPUT0": a + b, "OUTPUT1": a - b}
    return {"OUTPUT0": session.run(None, {"INPUT0": mlp_input()})[0]}


def check_server(grpc_port: int, reference: Any) -> None:
    """Both models answer the benchmark's exact gRPC requests correctly (raises otherwise)."""
    import grpc  # type: ignore[import-untyped]
    from tritonclient.grpc import service_pb2  # type: ignore[import-untyped]

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for model in (TINY, BATCHED):
            response = service_pb2.ModelInferResponse.FromString(infer(grpc_request(model), timeout=60))
            want = expected(model, reference)
            for i, out in enumerate(response.outputs):
                got = np.frombuffer(response.raw_output_contents[i], want[out.name].dtype).reshape(want[out.name].shape)
                if not np.allclose(got, want[out.name], rtol=1e-4, atol=1e-4):
                    raise AssertionError(f"{model} on port {grpc_port}: wrong {out.name}")


# -------------------------------------------------------------------------------------- repositories
def build_repositories(directory: Path) -> tuple[Path, Path, Path]:
    """(Tritium's repository, Triton's twin repository, the MLP's .onnx file)."""
    tritium_repo, triton_repo = directory / "models", directory / "triton-models"
    examples = ROOT / "examples" / "model_repository"
    if not (examples / TINY / "1" / "model.onnx").exists():
        examples = directory / "examples"
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(examples)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    shutil.copytree(examples / TINY, tritium_repo / TINY)
    mlp_file = directory / "mlp.onnx"
    mlp_file.write_bytes(mlp())
    (tritium_repo / BATCHED / "1").mkdir(parents=True)
    shutil.copy(mlp_file, tritium_repo / BATCHED / "1" / "model.onnx")
    (tritium_repo / BATCHED / "config.pbtxt").write_text(MLP_CONFIG.format(platform='platform: "onnxruntime_onnx"'))
    configs = {
        TINY: (examples / TINY / "config.pbtxt").read_text(),
        BATCHED: MLP_CONFIG.format(platform=""),
    }
    for model, onnx_file in ((TINY, examples / TINY / "1" / "model.onnx"), (BATCHED, mlp_file)):
        (triton_repo / model / "1").mkdir(parents=True)
        shutil.copy(onnx_file, triton_repo / model / "1" / "net.onnx")  # not model.onnx: see bench/_triton.py
        (triton_repo / model / "1" / "model.py").write_text(TWIN_MODEL)
        lines = [line for line in configs[model].splitlines() if not line.startswith(("platform:", "backend:"))]
        lines = [line for line in lines if "tritium_" not in line]  # Tritium-only parameters
        (triton_repo / model / "config.pbtxt").write_text('backend: "python"\n' + "\n".join(lines) + "\n")
    local_repo = directory / "models-local"  # `simple` asks to run in every worker (docs/performance.md)
    shutil.copytree(tritium_repo, local_repo)
    config = local_repo / TINY / "config.pbtxt"
    if "tritium_run_in_workers" not in config.read_text():
        config.write_text(config.read_text().rstrip("\n") + "\n" + IN_WORKERS + "\n")
    return tritium_repo, triton_repo, mlp_file


# ------------------------------------------------------------------------------------------- servers
@attrs.define
class Server:
    """One server under test."""

    name: str
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    log: Path
    workers: int | None  # None: no --workers flag (the shipped default, "default" in the tables) or Triton


def start_tritium(name: str, repo: Path, workers: int | None, directory: Path) -> Server:
    http_port, grpc_port = free_port(), free_port()
    command = [
        str(Path(sys.executable).with_name("tritium")),
        "serve",
        f"--model-repository={repo}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--log-info=false",
    ]
    from importlib.metadata import entry_points

    if any(ep.name == "metrics_prometheus" for ep in entry_points(group="tritium.plugins")):
        command.append("--allow-metrics=false")
    if workers is not None:
        command.append(f"--workers={workers}")
    log = directory / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return Server(name, http_port, grpc_port, process, log, workers)


def start_servers(args: argparse.Namespace, tritium_repo: Path, triton_repo: Path, directory: Path) -> list[Server]:
    servers = [start_tritium(DEFAULT, tritium_repo, None, directory), start_tritium(W1, tritium_repo, 1, directory)]
    if "tiny" in args.parts and not args.no_local:
        servers.append(start_tritium(LOCAL, tritium_repo.with_name("models-local"), 0, directory))  # all cores
    if "scaling" in args.parts:
        servers += [start_tritium(f"w{n}", tritium_repo, n, directory) for n in args.workers_list if n != 1]
    if args.triton is not None:
        http_port, grpc_port, log = free_port(), free_port(), directory / "triton.log"
        process = start_triton(args.triton.resolve(), triton_repo, http_port, grpc_port, free_port(), log)
        servers.append(Server(TRITON, http_port, grpc_port, process, log, 0))
    for server in servers:
        try:
            wait_http_ready(server.http_port, server.process, timeout=300)
        except (RuntimeError, TimeoutError):
            print(server.log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
    return servers


# ---------------------------------------------------------------------------------------- measuring
def process_tree(pid: int) -> Iterator[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    yield pid
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            yield from process_tree(int(child))


def role(pid: int, root: int) -> str:
    """What a process of a server is: main (the process we started), executor, worker<i>, or other."""
    if pid == root:
        return "main"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if b"tritium._multiproc.child" in argv:
        at = argv.index(b"tritium._multiproc.child")
        kind, index = argv[at + 1].decode(), argv[at + 2].decode()
        return "executor" if kind == "executor" else f"worker{index}"
    return "other"  # Triton's Python-backend stubs, a model's own subprocesses


def cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process of the server, keyed by :func:`role`."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        key = role(pid, root)
        cpu[key] = cpu.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return cpu


def model_counts(http_port: int, model: str) -> tuple[int, int, int]:
    """(successes, failures, executions) of ``model`` from the statistics extension."""
    url = f"http://127.0.0.1:{http_port}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=30) as response:
        entry = json.loads(response.read())["model_stats"][0]
    stats = entry["inference_stats"]
    return int(stats["success"]["count"]), int(stats["fail"]["count"]), int(entry["execution_count"])


def _ms(seconds: float) -> str:
    """A duration as h2load parses it (integers with a unit)."""
    return f"{max(0, round(seconds * 1000))}ms"


def h2load(
    port: int, body: Path, concurrency: int, duration: float, warmup: float, threads: int = 1
) -> tuple[float, float, float]:
    """Unary gRPC load, one connection per client: (requests/s, p50 ms, p99 ms) after the warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "h2load.log"
        command = [
            H2LOAD,
            "-t",
            str(max(1, min(threads, concurrency))),
            "-c",
            str(concurrency),
            "-m",
            "1",
            "-D",
            _ms(duration),
            "--warm-up-time",
            _ms(warmup),
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"--log-file={log}",
            f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 120)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    statuses = {row[1] for row in rows}
    if statuses - {"200"}:
        raise RuntimeError(f"h2load saw HTTP statuses {statuses}:\n{done.stdout}")
    latencies = sorted(int(row[2]) / 1e3 for row in rows)  # microseconds -> ms
    if not latencies:
        return 0.0, float("nan"), float("nan")

    def pick(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]

    return len(latencies) / duration, pick(0.50), pick(0.99)


@attrs.define
class Run:
    """One load run against one server."""

    part: str
    server: str
    protocol: str
    model: str
    concurrency: int
    rps: float
    p50: float
    p99: float
    requests: int  # successes the server counted over the whole run (warm-up included)
    failures: int
    batch: float  # average batch size (requests per execution)
    cpu: dict[str, float]  # CPU seconds per process role over the run
    client_cpu: float  # CPU seconds of the load generator

    def us_per_request(self, roles: str | None = None) -> float:
        total = sum(v for k, v in self.cpu.items() if roles is None or k.startswith(roles))
        return total / self.requests * 1e6 if self.requests else float("nan")

    def worker_spread(self) -> float:
        """max / min CPU over the worker processes (1.0 = even; nan with fewer than two workers)."""
        values = [v for k, v in self.cpu.items() if k.startswith("worker")]
        return max(values) / min(values) if len(values) > 1 and min(values) > 0 else float("nan")


def measure(
    server: Server,
    part: str,
    protocol: str,
    model: str,
    concurrency: int,
    args: argparse.Namespace,
    loads: dict[str, Path],
) -> Run:
    before, cpu_before = model_counts(server.http_port, model), cpu_by_role(server.process.pid)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if protocol == HTTP:
        url = f"http://127.0.0.1:{server.http_port}/v2/models/{model}/infer"
        threads = max(1, min(args.client_threads, concurrency))
        rps, p50, p99, errors = run_wrk(url, loads[HTTP], concurrency, args.duration, threads=threads, timeout_s=30)
        if errors:
            raise RuntimeError(f"{server.name}: {errors} non-2xx HTTP responses")
    else:
        rps, p50, p99 = h2load(
            server.grpc_port, loads[model], concurrency, args.duration, args.warmup, args.client_threads
        )
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after, cpu_after = model_counts(server.http_port, model), cpu_by_role(server.process.pid)
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
    client = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    requests, failures = after[0] - before[0], after[1] - before[1]
    run = Run(
        part,
        server.name,
        protocol,
        model,
        concurrency,
        rps,
        p50,
        p99,
        requests,
        failures,
        requests / max(after[2] - before[2], 1),
        cpu,
        client,
    )
    workers = " ".join(f"{k[6:]}:{v:.2f}" for k, v in sorted(cpu.items()) if k.startswith("worker"))
    print(
        f"  {part:8} {protocol:9} {model:6} c={concurrency:<4} {server.name:7} {rps:8.0f} req/s  p50 {p50:7.2f} ms  "
        f"p99 {p99:7.2f} ms  batch {run.batch:4.1f}  server {run.us_per_request():5.0f} us/req  "
        f"client {client / max(requests, 1) * 1e6:4.0f} us/req"
        + (f"  workers s {workers}" if workers else "")
        + (f"  failed/cancelled {failures}" if failures else ""),
        flush=True,
    )
    return run


def interleaved(
    servers: list[Server],
    part: str,
    points: list[tuple[str, str, int]],
    args: argparse.Namespace,
    loads: dict[str, Path],
) -> list[Run]:
    """Every point ``repeats`` times, each repeat running every server once, in an order rotated per repeat."""
    runs = []
    for protocol, model, concurrency in points:
        for repeat in range(args.repeats):
            shift = repeat % len(servers)
            for server in servers[shift:] + servers[:shift]:
                runs.append(measure(server, part, protocol, model, concurrency, args, loads))
    return runs


def warm_up(servers: list[Server], loads: dict[str, Path]) -> None:
    """One second of each load on each server: first-request costs out of the way."""
    for server in servers:
        run_wrk(f"http://127.0.0.1:{server.http_port}/v2/models/{TINY}/infer", loads[HTTP], 8, 1.0, timeout_s=30)
        for model in (TINY, BATCHED):
            h2load(server.grpc_port, loads[model], 8, 1.0, 0.0)


# ------------------------------------------------------------------------------------------- results
@attrs.define
class Table:
    """Medians over the repeats of one (part, server, protocol, model, concurrency)."""

    runs: list[Run]

    def get(self, part: str, server: str, protocol: str, model: str, concurrency: int) -> list[Run]:
        return [
            r
            for r in self.runs
            if (r.part, r.server, r.protocol, r.model, r.concurrency) == (part, server, protocol, model, concurrency)
        ]

    def med(self, field: str, *key: Any) -> float:
        runs = self.get(*key)
        values = [getattr(r, field)() if callable(getattr(r, field)) else getattr(r, field) for r in runs]
        values = [v for v in values if v == v]
        return float(statistics.median(values)) if values else float("nan")


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "-"


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def render(runs: list[Run], args: argparse.Namespace, servers: list[Server], notes: str) -> str:
    t = Table(runs)
    names = [s.name for s in servers]
    has_triton = TRITON in names
    cores = usable_cores()
    default_workers = cores if cores > 1 else 1
    lines = [
        "## Multi-process serving (`bench/multiprocess.py`, issue 12)",
        "",
        f"{cores} usable cores (os.cpu_count {os.cpu_count()}), shared by every server, the load generator and "
        f"other users of the machine. Servers up together for the whole run; {args.repeats} repeats of "
        f"{args.duration:g} s per point (gRPC after {args.warmup:g} s warm-up), server order rotated per repeat, "
        "medians. **default**: `tritium serve` with no `--workers` flag, the shipped default (one process, "
        "gRPC on the native transport); **local**: `--workers 0`, one worker per usable core "
        f"({default_workers} worker processes + the model executor here), with `tritium_run_in_workers` in the "
        "tiny model's config; **w1**: `--workers 1` (one process, stated explicitly); **wN** in the scaling "
        "table: `--workers N`; **triton**: real Triton 2.51, both models "
        "as Python-backend twins running the same .onnx with onnxruntime. Load generators with "
        f"{args.client_threads} thread(s) each. HTTP JSON: wrk, connections = concurrency. gRPC raw: h2load "
        "`-c <concurrency> -m 1`, one HTTP/2 connection per client "
        "(with SO_REUSEPORT the kernel spreads connections, not streams, over the workers: a client multiplexing "
        "all its streams on one connection reaches one worker). CPU us/req: user + system CPU of all the "
        "server's processes over the run / requests its statistics counted.",
        "",
    ]
    targets: list[str] = []
    if "tiny" in args.parts:
        lines += [
            "### Tiny model (`simple`, INT32 [1,16] x2)",
            "",
            "| protocol | conc. | default req/s | w1 req/s | triton req/s | default / triton | w1 / triton "
            "| default p50 / p99 ms | w1 p50 / p99 ms | triton p50 / p99 ms | CPU us/req default / w1 / triton |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for protocol in (HTTP, GRPC):
            for c in args.concurrency:
                k = {n: ("tiny", n, protocol, TINY, c) for n in (DEFAULT, W1, TRITON)}
                rps = {n: t.med("rps", *k[n]) for n in k}
                lat = {n: f"{t.med('p50', *k[n]):.2f} / {t.med('p99', *k[n]):.2f}" if n in names else "-" for n in k}
                cpu = " / ".join(f"{t.med('us_per_request', *k[n]):.0f}" if n in names else "-" for n in k)
                lines.append(
                    f"| {protocol} | {c} | {rps[DEFAULT]:.0f} | {rps[W1]:.0f} | "
                    f"{rps[TRITON]:.0f} | {fmt_ratio(rps[DEFAULT], rps[TRITON])} | {fmt_ratio(rps[W1], rps[TRITON])} "
                    f"| {lat[DEFAULT]} | {lat[W1]} | {lat[TRITON]} | {cpu} |"
                )
                if c in (16, 64):
                    ok = has_triton and rps[DEFAULT] >= rps[TRITON]
                    targets.append(
                        f"tiny {protocol} c={c}: default >= Triton ({fmt_ratio(rps[DEFAULT], rps[TRITON])})"
                        f": {verdict(ok) if has_triton else 'not measured (no Triton)'}"
                    )
            if 1 in args.concurrency:
                d, w = t.med("p50", "tiny", DEFAULT, protocol, TINY, 1), t.med("p50", "tiny", W1, protocol, TINY, 1)
                targets.append(
                    f"tiny {protocol} c=1: p50 of default within 10 % of --workers 1 ({d:.3f} vs "
                    f"{w:.3f} ms, {d / w - 1:+.0%}): {verdict(d <= 1.1 * w)}"
                )
        lines.append("")
        if LOCAL in names:
            lines += [
                "Tiny model again, with `tritium_run_in_workers` in its config (**local**: default settings, "
                "every worker runs its own copy of `simple`, no hop to the executor):",
                "",
                "| protocol | conc. | local req/s | local / triton | local / default | local / w1 | local p50 / p99 ms "
                "| CPU us/req |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for protocol in (HTTP, GRPC):
                for c in args.concurrency:
                    k = {n: ("tiny", n, protocol, TINY, c) for n in (LOCAL, DEFAULT, W1, TRITON)}
                    rps = {n: t.med("rps", *k[n]) for n in k}
                    lines.append(
                        f"| {protocol} | {c} | {rps[LOCAL]:.0f} | {fmt_ratio(rps[LOCAL], rps[TRITON])} "
                        f"| {fmt_ratio(rps[LOCAL], rps[DEFAULT])} | {fmt_ratio(rps[LOCAL], rps[W1])} "
                        f"| {t.med('p50', *k[LOCAL]):.2f} / {t.med('p99', *k[LOCAL]):.2f} "
                        f"| {t.med('us_per_request', *k[LOCAL]):.0f} |"
                    )
                if 1 in args.concurrency:
                    d, w = t.med("p50", "tiny", LOCAL, protocol, TINY, 1), t.med("p50", "tiny", W1, protocol, TINY, 1)
                    targets.append(
                        f"(not a target: default settings with `tritium_run_in_workers`) tiny {protocol} c=1: p50 "
                        f"{d:.3f} vs {w:.3f} ms with --workers 1, {d / w - 1:+.0%}: "
                        f"{'within' if d <= 1.1 * w else 'not within'} 10 %"
                    )
            lines.append("")
    if "batched" in args.parts:
        lines += [
            "### Batched model (MLP 512-2048-2048-512, dynamic batching with 2 ms queue delay, gRPC raw)",
            "",
            "| conc. | default inf/s | w1 inf/s | triton inf/s | default / triton | w1 / triton | avg batch default / "
            "w1 / triton | default p50 / p99 ms | w1 p50 / p99 ms | triton p50 / p99 ms "
            "| CPU us/req default / w1 / triton |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in args.batch_concurrency:
            k = {n: ("batched", n, GRPC, BATCHED, c) for n in (DEFAULT, W1, TRITON)}
            rps = {n: t.med("rps", *k[n]) for n in k}
            lat = {n: f"{t.med('p50', *k[n]):.1f} / {t.med('p99', *k[n]):.1f}" if n in names else "-" for n in k}
            batch = " / ".join(f"{t.med('batch', *k[n]):.1f}" if n in names else "-" for n in k)
            cpu = " / ".join(f"{t.med('us_per_request', *k[n]):.0f}" if n in names else "-" for n in k)
            lines.append(
                f"| {c} | {rps[DEFAULT]:.0f} | {rps[W1]:.0f} | {rps[TRITON]:.0f} | "
                f"{fmt_ratio(rps[DEFAULT], rps[TRITON])} | {fmt_ratio(rps[W1], rps[TRITON])} | {batch} "
                f"| {lat[DEFAULT]} | {lat[W1]} | {lat[TRITON]} | {cpu} |"
            )
            ok = has_triton and rps[DEFAULT] >= rps[TRITON]
            targets.append(
                f"batched gRPC c={c}: default >= Triton ({fmt_ratio(rps[DEFAULT], rps[TRITON])}): "
                f"{verdict(ok) if has_triton else 'not measured (no Triton)'}"
            )
        lines.append("")
    if "scaling" in args.parts:
        c = args.scaling_concurrency
        lines += [
            f"### Scaling with `--workers N` (concurrency {c})",
            "",
            "| N | tiny HTTP JSON req/s (vs N=1) | tiny gRPC raw req/s (vs N=1) | batched gRPC inf/s (vs N=1) "
            "| CPU us/req tiny HTTP / gRPC / batched: workers + executor | worker CPU max/min (HTTP / gRPC) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        keys = ((HTTP, TINY, c), (GRPC, TINY, c), (GRPC, BATCHED, c))
        base = {key: t.med("rps", "scaling", W1, *key) for key in keys}
        scale: dict[int, dict[tuple[str, str, int], float]] = {}
        for n in args.workers_list:
            name = W1 if n == 1 else f"w{n}"
            cells, cpus, spreads = [], [], []
            scale[n] = {}
            for key in base:
                value = t.med("rps", "scaling", name, *key)
                scale[n][key] = value / base[key] if base[key] else float("nan")
                cells.append(f"{value:.0f} ({scale[n][key]:.2f}x)")
                w = t.med("us_per_request", "scaling", name, *key)  # all processes
                ex = sum(r.cpu.get("executor", 0.0) for r in t.get("scaling", name, *key))
                req = sum(r.requests for r in t.get("scaling", name, *key))
                cpus.append(f"{w:.0f}" + (f" ({ex / req * 1e6:.0f} exec.)" if n > 1 and req else ""))
                if key[1] == TINY:
                    spreads.append(f"{t.med('worker_spread', 'scaling', name, *key):.2f}" if n > 1 else "-")
            lines.append(f"| {n} | {' | '.join(cells)} | {' / '.join(cpus)} | {' / '.join(spreads)} |")
        lines.append("")
        if 16 in scale and cores >= 16:
            ok = all(scale[16][(p, TINY, c)] >= 5 for p in (HTTP, GRPC))
            targets.append(
                f"scaling at 16 workers >= 5x (HTTP {scale[16][(HTTP, TINY, c)]:.1f}x, gRPC "
                f"{scale[16][(GRPC, TINY, c)]:.1f}x): {verdict(ok)}"
            )
        else:
            targets.append(f"scaling >= 5x at 16 workers: not measurable here ({cores} usable cores)")
    failures = sum(r.failures for r in runs)
    lines += (
        ["Targets (issue 12):", ""]
        + [f"- {line}" for line in targets]
        + [
            "",
            f"Requests the servers' statistics counted as failed over the whole run: {failures} (Tritium counts a "
            "request that h2load abandons in the batch queue when a timed run ends as failed, cancelled, and so "
            "does Triton at times; h2load itself saw no failed request and the gRPC answers checked before and "
            "after the load were right). Load average at the "
            f"end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        ]
    )
    lines += ["", *cpu_table(t, args, names), "", READING]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def cpu_table(t: Table, args: argparse.Namespace, names: list[str]) -> list[str]:
    """CPU per request by process role at the highest concurrency of each part: what bounds req/s when the
    server and the load generator share the machine's cores."""
    cores = usable_cores()
    points = []
    if "tiny" in args.parts:
        points += [("tiny", p, TINY, max(args.concurrency)) for p in (HTTP, GRPC)]
    if "batched" in args.parts:
        points.append(("batched", GRPC, BATCHED, max(args.batch_concurrency)))
    lines = [
        f"CPU per request (median over repeats; bound = {cores} cores / (server + client CPU per request), the "
        "most req/s these cores could give if they did nothing else):",
        "",
        "| load | server | server us/req | of which workers / executor / main | client us/req | bound req/s "
        "| measured req/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for part, protocol, model, c in points:
        for name in (DEFAULT, LOCAL, W1, TRITON):
            runs = t.get(part, name, protocol, model, c)
            if not runs:
                continue
            server = _median([r.us_per_request() for r in runs])
            client = _median([r.client_cpu / r.requests * 1e6 for r in runs if r.requests])
            roles = ("worker", "executor", "main")
            split = (
                " / ".join(f"{_median([r.us_per_request(k) for r in runs]):.0f}" for k in roles)
                if name in (DEFAULT, LOCAL)
                else "-"
            )
            lines.append(
                f"| {model} {protocol} c={c} | {name} | {server:.0f} | {split} | {client:.0f} "
                f"| {cores / ((server + client) * 1e-6):.0f} | {t.med('rps', part, name, protocol, model, c):.0f} |"
            )
    return lines


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


READING = """Reading. On this machine the servers and the load generator share the same cores, so a server's req/s is
bounded by its CPU per request (table above), not by how many processes it runs. The default (one process)
serves the tiny model over HTTP on its fast path and over gRPC on the native transport (the plugin's own
HTTP/2 on the event loop, ModelInfer answered on the spot): both cost about 55-70 us of server CPU per request,
against ~300 us/req when gRPC ran on grpc.aio. Worker processes (`--workers N`, `local`) spend more CPU per
request: every request crosses to the model executor and back (two channel messages, two wake-ups of another
process), and on 2 busy cores each wake-up can wait for a core, which is what their concurrency-1 latency
shows. Triton's numbers come from C++ frontends and its Python backend stub (a separate process per model
instance). On a machine with idle cores (16 on the GPU host) the bound becomes cores / CPU per request and the
scaling table is the one to read."""


def usable_cores() -> int:
    try:
        from tritium._multiproc.supervisor import usable_cores as tritium_usable_cores

        return int(tritium_usable_cores())
    except ImportError:
        return len(os.sched_getaffinity(0))


def default_workers_list() -> list[int]:
    cores, values, n = usable_cores(), [1, 2], 4
    while n <= cores:
        values.append(n)
        n *= 2
    if cores > 2 and cores not in values:
        values.append(cores)
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per run (default 2)")
    parser.add_argument("--warmup", type=float, default=1.0, help="h2load warm-up seconds per run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per point, medians reported (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64], help="tiny model")
    parser.add_argument("--batch-concurrency", type=int, nargs="+", default=[64, 128], help="batched model")
    parser.add_argument(
        "--workers-list",
        type=int,
        nargs="+",
        default=default_workers_list(),
        help="--workers values of the scaling part (default: 1, 2, 4, ... up to the usable cores)",
    )
    parser.add_argument("--scaling-concurrency", type=int, default=64)
    parser.add_argument(
        "--client-threads",
        type=int,
        default=max(1, usable_cores() // 4),
        help="threads of wrk and h2load (default: a quarter of the usable cores, at least 1), so that one load "
        "generator thread does not cap a server with many workers",
    )
    parser.add_argument(
        "--parts", nargs="+", choices=("tiny", "batched", "scaling"), default=["tiny", "batched", "scaling"]
    )
    default_triton = os.environ.get("TRITIUM_BENCH_TRITON") or (
        "/tmp/triton-ref" if Path("/tmp/triton-ref/server").exists() else None
    )
    parser.add_argument(
        "--triton",
        type=Path,
        metavar="VENV",
        default=Path(default_triton) if default_triton else None,
        help="real Triton 2.51 (default: $TRITIUM_BENCH_TRITON, else /tmp/triton-ref if prepared)",
    )
    parser.add_argument("--no-triton", action="store_true", help="measure Tritium only")
    parser.add_argument(
        "--no-local", action="store_true", help="skip the tiny model with tritium_run_in_workers (server `local`)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--notes", default="", help="text appended under the tables")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every run's raw numbers to PATH")
    args = parser.parse_args()
    if args.no_triton:
        args.triton = None
    if args.triton is not None and (problem := check_venv(args.triton)):
        parser.error(problem)
    if 1 not in args.workers_list:
        args.workers_list.insert(0, 1)
    return args


def main() -> int:
    args = parse_args()
    for tool in (WRK, H2LOAD):
        if not Path(tool).exists():
            print(f"{tool} not found (apt-get install wrk nghttp2-client)", file=sys.stderr)
            return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tritium-bench-multiprocess-") as tmp:
        directory = Path(tmp)
        tritium_repo, triton_repo, mlp_file = build_repositories(directory)
        import onnxruntime as ort  # type: ignore[import-untyped]

        reference = ort.InferenceSession(str(mlp_file), providers=["CPUExecutionProvider"])
        loads: dict[str, Path] = {}
        for model in (TINY, BATCHED):
            body = grpc_request(model)
            loads[model] = directory / f"{model}.grpc"
            loads[model].write_bytes(b"\x00" + struct.pack(">I", len(body)) + body)
        a, b = tiny_inputs().values()
        json_body = json.dumps(
            {
                "inputs": [
                    {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": a.reshape(-1).tolist()},
                    {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": b.reshape(-1).tolist()},
                ]
            }
        )
        (directory / "tiny.json").write_text(json_body)
        loads[HTTP] = directory / "tiny.lua"
        loads[HTTP].write_text(
            f'wrk.method = "POST"\nlocal f = io.open("{directory / "tiny.json"}", "rb")\nwrk.body = f:read("*all")\n'
            'f:close()\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        servers: list[Server] = []
        runs: list[Run] = []
        try:
            servers = start_servers(args, tritium_repo, triton_repo, directory)
            for server in servers:
                check_server(server.grpc_port, reference)
            print(f"servers up in {time.monotonic() - started:.0f} s", flush=True)
            warm_up(servers, loads)
            by_name = {s.name: s for s in servers}
            main_servers = [by_name[n] for n in (DEFAULT, W1, TRITON) if n in by_name]
            if "tiny" in args.parts:
                points = [(p, TINY, c) for p in (HTTP, GRPC) for c in args.concurrency]
                tiny_servers = main_servers + ([by_name[LOCAL]] if LOCAL in by_name else [])
                runs += interleaved(tiny_servers, "tiny", points, args, loads)
            if "batched" in args.parts:
                points = [(GRPC, BATCHED, c) for c in args.batch_concurrency]
                runs += interleaved(main_servers, "batched", points, args, loads)
            if "scaling" in args.parts:
                scaling = [by_name[W1 if n == 1 else f"w{n}"] for n in args.workers_list]
                c = args.scaling_concurrency
                points = [(HTTP, TINY, c), (GRPC, TINY, c), (GRPC, BATCHED, c)]
                runs += interleaved(scaling, "scaling", points, args, loads)
            for server in servers:
                check_server(server.grpc_port, reference)  # still answering correctly after the load
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        finally:
            for server in servers:
                stop(server.process)
            for server in servers:
                text = server.log.read_text(errors="replace")
                if "Traceback" in text or " ERROR " in text or "restart" in text.lower():
                    print(f"--- {server.name} log (tail) ---\n{text[-3000:]}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps([attrs.asdict(r) for r in runs], indent=1))
    section = render(runs, args, servers, args.notes)
    print(section)
    print(f"bench took {time.monotonic() - started:.0f} s", flush=True)
    if not args.no_write:
        write_section(BEGIN, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
