#!/usr/bin/env python3
"""Dynamic batching benchmark: Tritium against onnxruntime called in-process, with and without batching.

    .venv/bin/python bench/batching.py [--model image_classification_model|medium_cnn] [--duration 3]
        [--repeats 3] [--concurrency 1 4 16 64 128] [--transport shm|binary] [--instances 1]
        [--max-batch-size 64] [--parameter KEY=VALUE ...] [--triton VENV] [--no-write]

Models: the example ``image_classification_model`` (a small CNN, 35 M multiply-adds per image) or
``medium_cnn`` (bench/_models.py, 0.47 G multiply-adds per image, about a quarter of ResNet-18); both FP32
[3,224,224] -> [1000].

Each concurrency point is measured ``--repeats`` times; every repeat measures, back to back:

1. **Ceiling**: the same ONNX file run with onnxruntime in this process (default session options, as the
   backend uses them) at batch sizes 1, 8 and 32; the best inferences/s is the ceiling no server can beat.
2. **Tritium, batching**: ``tritium serve`` with the model under ``dynamic_batching { }`` (no queue delay: a
   batch leaves as soon as the instance is free, so batches grow only while it is busy) and
   ``--instances`` instances; wrk (another process, C) sends HTTP requests of batch 1. The 600 KB input
   travels in system shared memory by default (``--transport shm``: registered once, as high-throughput
   Triton clients send large tensors); ``--transport binary`` puts it in the HTTP body.
3. **Tritium, no batching**: the same model without ``dynamic_batching`` (one request per execution).
4. With ``--triton VENV`` (a virtual environment prepared as ../shared/reference/real-triton.md says, with
   the server copied to ``VENV/server``): **real Triton 2.51** with the same config and ``dynamic_batching``,
   running the same .onnx file with onnxruntime in its Python backend (bench/_triton.py).

The order of 2-4 rotates between repeats. A point reports the median over repeats of each number, and its
"% of ceiling" is the median of the per-repeat ratios (server / ceiling measured seconds before), so a
machine whose speed drifts (this one is shared) moves both sides of each ratio together. The server's
event-loop CPU per request (from /proc) shows what serving costs beside the model.

Targets (issue 6): batching reaches >= 85 % of the ceiling at its best concurrency; at every concurrency
its p99 is within 1.5x of the no-batching p99. Results go to bench/RESULTS.md, one section per model.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shadows the stdlib package ``http`` when this folder is on the import path: drop it first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

import attrs  # noqa: E402
import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib and site-packages
from _harness import WRK, free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402
from _models import write_medium_cnn  # noqa: E402
from _triton import check_venv, start_triton, write_twin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "image_classification_model": "small CNN, 35 M multiply-adds per image (the example repository's)",
    "medium_cnn": "CNN with 0.47 G multiply-adds per image, about a quarter of ResNet-18 (bench/_models.py)",
}
SHAPE = (1, 3, 224, 224)
CEILING_BATCHES = (1, 8, 32)
CONFIG = """\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224, 224 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1000 ] }} ]
instance_group [ {{ kind: KIND_CPU count: {instances} }} ]
{parameters}
{batching}
"""
BATCHING, NO_BATCHING, TRITON = "batching", "no batching", "triton batching"
MODEL_NAMES = {BATCHING: "bench_batching", NO_BATCHING: "bench_nobatching", TRITON: "bench_triton"}
SHM_REGION = "bench_input"


def markers(model: str) -> tuple[str, str]:
    """The RESULTS.md markers of this model's section (the example model keeps the historical name)."""
    tag = "batching" if model == "image_classification_model" else f"batching-{model}"
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


# ------------------------------------------------------------------------------------------ ceiling
class Ceiling:
    """onnxruntime in this process, on the same file and default session options as the backend."""

    def __init__(self, model_file: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        self.inputs = {b: rng.random((b, *SHAPE[1:]), dtype=np.float32) for b in CEILING_BATCHES}

    def rate(self, batch: int, seconds: float) -> float:
        """Inferences/s at one batch size."""
        data = {"INPUT0": self.inputs[batch]}
        self.session.run(None, data)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.session.run(None, data)
            done += batch
        return done / (time.perf_counter() - start)

    def best(self, seconds: float) -> tuple[float, int]:
        """(inferences/s, batch size) at the best of :data:`CEILING_BATCHES`."""
        rates = {b: self.rate(b, seconds) for b in CEILING_BATCHES}
        batch = max(rates, key=lambda b: rates[b])
        return rates[batch], batch


# -------------------------------------------------------------------------------------------- servers
def infer_url(port: int, model: str) -> str:
    return f"http://127.0.0.1:{port}/v2/models/{model}/infer"


def model_file_for(model: str, directory: Path) -> Path:
    """The .onnx file of ``model``, built by the repository's own code."""
    if model == "medium_cnn":
        return write_medium_cnn(directory / "medium_cnn.onnx")
    examples = directory / "examples"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(examples)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return examples / model / "1" / "model.onnx"


def render_config(name: str, batching: bool, instances: int, max_batch_size: int, parameters: dict[str, str]) -> str:
    rendered = "\n".join(
        f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}' for key, value in parameters.items()
    )
    return CONFIG.format(
        name=name,
        batching="dynamic_batching { }" if batching else "",
        instances=instances,
        max_batch_size=max_batch_size,
        parameters=rendered,
    )


def build_repository(directory: Path, model_file: Path, args: argparse.Namespace) -> Path:
    """Tritium's repository: the model with and without dynamic batching."""
    parameters = dict(item.split("=", 1) for item in args.parameter)
    repo = directory / "models"
    for label in (BATCHING, NO_BATCHING):
        name = MODEL_NAMES[label]
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(model_file, repo / name / "1" / "model.onnx")
        config = render_config(name, label == BATCHING, args.instances, args.max_batch_size, parameters)
        (repo / name / "config.pbtxt").write_text(config)
    return repo


def build_triton_repository(directory: Path, model_file: Path, args: argparse.Namespace) -> Path:
    repo = directory / "triton-models"
    name = MODEL_NAMES[TRITON]
    write_twin(repo, name, render_config(name, True, args.instances, args.max_batch_size, {}), model_file)
    return repo


def start_tritium(repo: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("tritium")),
        "serve",
        f"--model-repository={repo}",
        f"--http-port={port}",
        "--http-address=127.0.0.1",
        "--allow-grpc=false",
        "--allow-client-shm=true",
        "--log-info=false",
    ]
    from importlib.metadata import entry_points

    if any(ep.name == "metrics_prometheus" for ep in entry_points(group="tritium.plugins")):
        command.append("--allow-metrics=false")
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def stats(port: int, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) of a model, from the statistics extension."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats", timeout=10) as response:
        entry = json.loads(response.read())["model_stats"][0]
    return int(entry["inference_count"]), int(entry["execution_count"])


def main_thread_cpu_s(pid: int) -> float:
    """CPU seconds the process' main thread (Tritium's event loop) has used."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------- wrk
def input_data() -> np.ndarray:
    return np.random.default_rng(1).random(SHAPE, dtype=np.float32)


def lua_script(directory: Path, transport: str) -> Path:
    """A wrk script POSTing one request of batch 1. ``binary``: the input in the HTTP body (what
    tritonclient sends by default); ``shm``: the input in the system shared memory region ``SHM_REGION``
    (registered by :func:`register_shm`), only the JSON header on the wire. Output binary either way."""
    data = input_data().tobytes()
    parameters: dict[str, object] = (
        {"binary_data_size": len(data)}
        if transport == "binary"
        else {"shared_memory_region": SHM_REGION, "shared_memory_byte_size": len(data)}
    )
    header = json.dumps(
        {
            "inputs": [{"name": "INPUT0", "shape": list(SHAPE), "datatype": "FP32", "parameters": parameters}],
            "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    body = directory / "request.body"
    body.write_bytes(header + data if transport == "binary" else header)
    script = directory / "request.lua"
    headers = f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n' if transport == "binary" else ""
    script.write_text(
        f'wrk.method = "POST"\nlocal f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n{headers}'
    )
    return script


def register_shm(port: int, segment: Any) -> None:
    """Register the POSIX shared memory ``segment`` holding the input with the server as ``SHM_REGION``."""
    body = json.dumps({"key": f"/{segment.name}", "offset": 0, "byte_size": input_data().nbytes}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/systemsharedmemory/region/{SHM_REGION}/register", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def shm_segment() -> Any:
    """A POSIX shared memory segment holding the input."""
    from multiprocessing import shared_memory

    data = input_data()
    segment = shared_memory.SharedMemory(create=True, size=data.nbytes)
    np.ndarray(data.shape, data.dtype, buffer=segment.buf)[:] = data
    return segment


# ------------------------------------------------------------------------------------------ measuring
@attrs.define
class Run:
    """One wrk run against one variant."""

    rps: float
    p50: float
    p99: float
    batch: float
    ratio: float  # rps / the ceiling measured just before
    loop_us: float | None  # Tritium's event-loop CPU per request


@attrs.define
class Server:
    """A server under test: where to send requests, its process and log, and whether its main thread is an
    event loop whose CPU per request is measured (Tritium's)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    measure_loop: bool


def measure(server: Server, label: str, script: Path, connections: int, duration: float, ceiling: float) -> Run:
    model = MODEL_NAMES[label]
    before = stats(server.port, model)
    cpu_before = main_thread_cpu_s(server.process.pid) if server.measure_loop else 0.0
    rps, p50, p99, errors = run_wrk(infer_url(server.port, model), script, connections, duration, timeout_s=60)
    cpu = main_thread_cpu_s(server.process.pid) - cpu_before if server.measure_loop else None
    after = stats(server.port, model)
    if errors:
        raise RuntimeError(f"{label}: {errors} failed requests")
    count = after[0] - before[0]
    batch = count / max(after[1] - before[1], 1)
    loop_us = cpu / count * 1e6 if cpu is not None and count else None
    run = Run(rps, p50, p99, batch, rps / ceiling, loop_us)
    print(
        f"  {label:15} c={connections:<4} {rps:8.1f} inf/s ({run.ratio:4.0%} of ceiling)  avg batch {batch:5.1f}  "
        f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms" + (f"  loop {loop_us:4.0f} us/req" if loop_us else ""),
        flush=True,
    )
    return run


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@attrs.define
class Point:
    """The medians of one concurrency point's repeats, per variant."""

    connections: int
    ceiling: float
    ceiling_batch: int
    runs: dict[str, list[Run]]

    def get(self, label: str, field: str) -> float:
        values = [getattr(run, field) for run in self.runs[label]]
        present = [v for v in values if v is not None]
        return median(present) if present else float("nan")


# ------------------------------------------------------------------------------------------- results
def render(points: list[Point], args: argparse.Namespace, triton: bool, notes: str) -> str:
    where = "in system shared memory (`--transport shm`)" if args.transport == "shm" else "in the HTTP body"
    ceilings = [p.ceiling for p in points]
    batches = sorted({p.ceiling_batch for p in points})
    setup = f"{args.instances} CPU instance{'s' if args.instances > 1 else ''}, max_batch_size {args.max_batch_size}"
    if args.parameter:
        setup += ", parameters " + ", ".join(f"`{p}`" for p in args.parameter)
    lines = [
        f"## Dynamic batching, `{args.model}` (bench/batching.py)",
        "",
        f"Model `{args.model}`: {MODELS[args.model]}; onnxruntime, {setup}; {os.cpu_count()} cores shared by "
        f"server, client and ceiling. Ceiling: onnxruntime in-process at its best batch size (of 1, 8, 32; best "
        f"was {', '.join(map(str, batches))}), measured before every run: {min(ceilings):.0f}-{max(ceilings):.0f} "
        f"inferences/s. Servers: HTTP requests of batch 1 from wrk with the 600 KB input {where}; "
        f"{args.repeats} repeats of {args.duration:g} s per point, medians; % of ceiling = median of the "
        "per-repeat ratios. batching = `dynamic_batching { }` (no queue delay), no batching = no scheduling "
        "section; loop = Tritium's event-loop CPU per request.",
        "",
    ]
    header = (
        "| conc. | ceiling inf/s | batching inf/s | % of ceiling | avg batch | p50 ms | p99 ms | loop us/req "
        "| no-batching inf/s | % of ceiling | p99 ms | p99 batching / no batching |"
    )
    rule = "| ---: " * 12 + "|"
    if triton:
        header += " Triton 2.51 batching inf/s | % of ceiling | p99 ms |"
        rule += " ---: | ---: | ---: |"
    lines += [header, rule]
    for p in points:
        row = (
            f"| {p.connections} | {p.ceiling:.0f} | {p.get(BATCHING, 'rps'):.0f} | {p.get(BATCHING, 'ratio'):.0%} "
            f"| {p.get(BATCHING, 'batch'):.1f} | {p.get(BATCHING, 'p50'):.1f} | {p.get(BATCHING, 'p99'):.1f} "
            f"| {p.get(BATCHING, 'loop_us'):.0f} | {p.get(NO_BATCHING, 'rps'):.0f} "
            f"| {p.get(NO_BATCHING, 'ratio'):.0%} | {p.get(NO_BATCHING, 'p99'):.1f} "
            f"| {p.get(BATCHING, 'p99') / p.get(NO_BATCHING, 'p99'):.2f}x |"
        )
        if triton:
            row += f" {p.get(TRITON, 'rps'):.0f} | {p.get(TRITON, 'ratio'):.0%} | {p.get(TRITON, 'p99'):.1f} |"
        lines.append(row)
    best = max(p.get(BATCHING, "ratio") for p in points)
    p99_ok = all(p.get(BATCHING, "p99") <= 1.5 * p.get(NO_BATCHING, "p99") for p in points)
    lines += [
        "",
        f"Targets: throughput >= 85 % of the ceiling: best {best:.0%} ({'met' if best >= 0.85 else 'NOT met'}); "
        f"p99 with batching within 1.5x of no batching at every concurrency: {'met' if p99_ok else 'NOT met'}.",
        "",
        f"Load average when the run ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="image_classification_model")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per point, medians reported (default 3)")
    parser.add_argument(
        "--transport",
        choices=("shm", "binary"),
        default="shm",
        help="how the 600 KB input travels: system shared memory (default) or the HTTP body",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 128])
    parser.add_argument("--instances", type=int, default=1, help="CPU instances of the model (default 1)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="the model's max_batch_size (default 64)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config parameter for Tritium's onnxruntime backend, e.g. intra_op_thread_count=1 (repeatable)",
    )
    parser.add_argument("--triton", type=Path, metavar="VENV", help="also measure real Triton 2.51 from VENV")
    parser.add_argument("--ceiling-seconds", type=float, default=1.0, help="seconds per ceiling batch size")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--notes", default="", help="text appended under the table")
    args = parser.parse_args()
    if args.triton is not None and (problem := check_venv(args.triton)):
        parser.error(problem)
    return args


def main() -> int:
    args = parse_args()
    if not Path(WRK).exists():
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tritium-bench-batching-") as tmp:
        directory = Path(tmp)
        model_file = model_file_for(args.model, directory)
        ceiling = Ceiling(model_file)
        script = lua_script(directory, args.transport)
        servers: dict[str, Server] = {}  # by variant; Tritium serves two
        started: list[Server] = []
        segment = shm_segment() if args.transport == "shm" else None
        try:
            port = free_port()
            log = directory / "tritium.log"
            tritium = start_tritium(build_repository(directory, model_file, args), port, log)
            started.append(Server(port, tritium, log, measure_loop=True))
            servers[BATCHING] = servers[NO_BATCHING] = started[-1]
            if args.triton is not None:
                http_port, log = free_port(), directory / "triton.log"
                triton = start_triton(
                    args.triton.resolve(), build_triton_repository(directory, model_file, args), http_port,
                    free_port(), free_port(), log,
                )
                started.append(Server(http_port, triton, log, measure_loop=False))
                servers[TRITON] = started[-1]
            for server in started:
                try:
                    wait_http_ready(server.port, server.process)
                except (RuntimeError, TimeoutError):
                    print(server.log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                if segment is not None:
                    register_shm(server.port, segment)
            labels = list(servers)
            for label in labels:  # warm-up
                run_wrk(infer_url(servers[label].port, MODEL_NAMES[label]), script, 8, 1.0, timeout_s=60)
            points = []
            for connections in args.concurrency:
                runs: dict[str, list[Run]] = {label: [] for label in labels}
                ceilings: list[tuple[float, int]] = []
                for repeat in range(args.repeats):
                    rotated = labels[repeat % len(labels):] + labels[: repeat % len(labels)]
                    for label in rotated:
                        best, batch = ceiling.best(args.ceiling_seconds)
                        ceilings.append((best, batch))
                        print(f"  ceiling         batch {batch:<3} {best:8.1f} inf/s", flush=True)
                        runs[label].append(measure(servers[label], label, script, connections, args.duration, best))
                rates = [c[0] for c in ceilings]
                batches = [c[1] for c in ceilings]
                points.append(
                    Point(connections, median(rates), max(set(batches), key=batches.count), runs)
                )
        finally:
            for server in started:
                stop(server.process)
            if segment is not None:
                segment.close()
                segment.unlink()
    section = render(points, args, TRITON in servers, args.notes)
    print(section)
    if not args.no_write:
        write_section(*markers(args.model), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
