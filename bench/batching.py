#!/usr/bin/env python3
"""Dynamic batching benchmark: Tritium against onnxruntime called in-process, with and without batching.

    .venv/bin/python bench/batching.py [--duration 3] [--repeats 2] [--concurrency 1 4 16 64 128]
                                       [--transport shm|binary] [--no-write]

Model: the example ``image_classification_model`` (a small CNN, FP32 [3,224,224] -> [1000]; compute-bound).

1. **Ceiling**: the same ONNX file run with onnxruntime in this process (default session options, as the
   backend uses them) at batch sizes 1..64; the best inferences/s is the ceiling no server can beat here.
2. **Tritium, batching**: ``tritium serve`` with the model under ``dynamic_batching { }`` (no queue delay:
   a batch leaves as soon as the instance is free, so batches grow only while it is busy) and one
   instance; wrk (another process, C) sends HTTP requests of batch 1 at each concurrency. The 600 KB input
   travels in system shared memory by default (``--transport shm``: registered once, as high-throughput
   Triton clients send large tensors), so the run measures batching rather than moving 600 KB bodies
   through Python; ``--transport binary`` puts it in the HTTP body (tritonclient's default).
3. **Tritium, no batching**: the same model without a ``dynamic_batching`` section (the default
   scheduler, one request per execution), for the latency comparison.

The two variants alternate point by point and each point keeps the best of ``--repeats`` runs, since the
machine may be shared. Targets: batching reaches >= 85 % of the ceiling at its best concurrency; at every
concurrency its p99 is within 1.5x of the no-batching p99. Results go to the ``batching`` section of
bench/RESULTS.md (with the load average, to judge how quiet the machine was). About two minutes in all.
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib and site-packages
from _harness import WRK, free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- batching:begin -->", "<!-- batching:end -->"
MODEL = "image_classification_model"
SHAPE = (1, 3, 224, 224)
CONFIG = """\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "INPUT0" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224, 224 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1000 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{batching}
"""
VARIANTS = {"batching": "bench_batching", "no batching": "bench_nobatching"}
SHM_REGION = "bench_input"


# ------------------------------------------------------------------------------------------ ceiling
def ceiling(model_file: Path, seconds: float, repeats: int) -> dict[int, float]:
    """Inferences/s of onnxruntime in this process at each batch size (best of ``repeats`` runs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    rates: dict[int, float] = {}
    for _ in range(repeats):
        for batch in (1, 8, 16, 32, 64):
            data = np.random.default_rng(0).random((batch, *SHAPE[1:]), dtype=np.float32)
            session.run(None, {"INPUT0": data})
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                session.run(None, {"INPUT0": data})
                done += batch
            rate = done / (time.perf_counter() - start)
            rates[batch] = max(rates.get(batch, 0.0), rate)
            print(f"ceiling   batch {batch:<3} {rate:8.1f} inferences/s", flush=True)
    return rates


# -------------------------------------------------------------------------------------------- server
def infer_url(port: int, model: str) -> str:
    return f"http://127.0.0.1:{port}/v2/models/{model}/infer"


def build_repository(directory: Path) -> tuple[Path, Path]:
    """The example repository plus the two benchmark variants of the model; returns (repo, model file)."""
    examples = directory / "examples"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(examples)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    model_file = examples / MODEL / "1" / "model.onnx"
    repo = directory / "models"
    for label, name in VARIANTS.items():
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(model_file, repo / name / "1" / "model.onnx")
        batching = "dynamic_batching { }" if label == "batching" else ""
        (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, batching=batching))
    return repo, model_file


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


def register_shm(port: int) -> Any:
    """Put the input in a POSIX shared memory segment and register it with the server as ``SHM_REGION``."""
    from multiprocessing import shared_memory

    data = input_data()
    segment = shared_memory.SharedMemory(create=True, size=data.nbytes)
    np.ndarray(data.shape, data.dtype, buffer=segment.buf)[:] = data
    body = json.dumps({"key": f"/{segment.name}", "offset": 0, "byte_size": data.nbytes}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/systemsharedmemory/region/{SHM_REGION}/register", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return segment


# ------------------------------------------------------------------------------------------- results
def render(
    rates: dict[int, float],
    rows: list[dict[str, float]],
    duration: float,
    repeats: int,
    transport: str,
    notes: str,
) -> str:
    best_batch = max(rates, key=lambda b: rates[b])
    best = rates[best_batch]
    top = max(row["b_rps"] for row in rows)
    p99_ok = all(row["b_p99"] <= 1.5 * row["n_p99"] for row in rows)
    where = "in system shared memory (`--transport shm`)" if transport == "shm" else "in the HTTP body"
    lines = [
        "## Dynamic batching (bench/batching.py)",
        "",
        f"Model `{MODEL}` (CNN, FP32 [3,224,224] -> [1000], onnxruntime, 1 CPU instance), {os.cpu_count()} cores. "
        f"Ceiling: onnxruntime in-process, best batch size {best_batch}: **{best:.0f} inferences/s** "
        f"(batch 1: {rates[1]:.0f}/s). Tritium: `tritium serve`, HTTP requests of batch 1 from wrk (another "
        f"process on the same cores) with the 600 KB input {where}, best of {repeats} runs of {duration:g} s "
        "per point; batching = `dynamic_batching { }` (no queue delay), no batching = no scheduling section.",
        "",
        "| conc. | batching inf/s | % of ceiling | avg batch | p50 ms | p99 ms | no-batching inf/s | p50 ms | p99 ms "
        "| p99 batching / no batching |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['c']:.0f} | {row['b_rps']:.0f} | {row['b_rps'] / best:.0%} | {row['b_batch']:.1f} | "
            f"{row['b_p50']:.1f} | {row['b_p99']:.1f} | {row['n_rps']:.0f} | {row['n_p50']:.1f} | "
            f"{row['n_p99']:.1f} | {row['b_p99'] / row['n_p99']:.2f}x |"
        )
    lines += [
        "",
        f"Targets: throughput >= 85 % of the ceiling: best {top / best:.0%} "
        f"({'met' if top >= 0.85 * best else 'NOT met'}); p99 with batching within 1.5x of no batching at "
        f"every concurrency: {'met' if p99_ok else 'NOT met'}.",
    ]
    load = os.getloadavg()[0]
    lines += [
        "",
        f"Load average when the run ended: {load:.1f} on {os.cpu_count()} cores"
        + (" (the machine was shared: rerun on a quiet one for stable numbers)." if load > 2.5 else "."),
    ]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point, best kept (default 2)")
    parser.add_argument(
        "--transport",
        choices=("shm", "binary"),
        default="shm",
        help="how the 600 KB input travels: system shared memory (default) or the HTTP body",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 128])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--notes", default="", help="text appended under the table")
    args = parser.parse_args()
    if not Path(WRK).exists():
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tritium-bench-batching-") as tmp:
        directory = Path(tmp)
        repo, model_file = build_repository(directory)
        rates = ceiling(model_file, seconds=1.5, repeats=args.repeats)
        script = lua_script(directory, args.transport)
        port = free_port()
        process = start_tritium(repo, port, directory / "tritium.log")
        measured: dict[tuple[str, int], tuple[float, float, float, float]] = {}
        segment = None
        try:
            try:
                wait_http_ready(port, process)
            except (RuntimeError, TimeoutError):
                print((directory / "tritium.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            if args.transport == "shm":
                segment = register_shm(port)
            for model in VARIANTS.values():
                run_wrk(infer_url(port, model), script, 8, 1.0, timeout_s=30)  # warm-up
            # The two variants alternate, point by point, and each point is measured `repeats` times: on a
            # shared machine the best of a few runs is the least disturbed one.
            for connections in args.concurrency:
                for repeat in range(args.repeats):
                    order = list(VARIANTS.items())
                    for label, model in order if repeat % 2 == 0 else order[::-1]:  # alternate who goes first
                        before = stats(port, model)
                        rps, p50, p99, errors = run_wrk(
                            infer_url(port, model), script, connections, args.duration, timeout_s=30
                        )
                        after = stats(port, model)
                        batch = (after[0] - before[0]) / max(after[1] - before[1], 1)
                        print(
                            f"{label:12} c={connections:<4} {rps:8.1f} inf/s  avg batch {batch:5.1f}  "
                            f"p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  non-2xx {errors}",
                            flush=True,
                        )
                        if errors:
                            raise RuntimeError(f"{label}: {errors} failed requests")
                        best = measured.get((label, connections))
                        if best is None or rps > best[0]:
                            measured[(label, connections)] = (rps, p50, p99, batch)
        finally:
            stop(process)
            if segment is not None:
                segment.close()
                segment.unlink()
    rows = []
    for connections in args.concurrency:
        b = measured[("batching", connections)]
        n = measured[("no batching", connections)]
        rows.append(
            {"c": connections, "b_rps": b[0], "b_p50": b[1], "b_p99": b[2], "b_batch": b[3],
             "n_rps": n[0], "n_p50": n[1], "n_p99": n[2]}
        )
    section = render(rates, rows, args.duration, args.repeats, args.transport, args.notes)
    print(section)
    if not args.no_write:
        write_section(BEGIN, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
