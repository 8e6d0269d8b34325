#!/usr/bin/env python3
"""PyTorch backend benchmark: Tritium serving a TorchScript MLP with dynamic batching against the same module
called in-process (the ceiling).

    .venv/bin/python bench/torch_batching.py [--hidden 4096] [--duration 3] [--repeats 3]
        [--concurrency 1 4 16 64 128] [--max-batch-size 64] [--instances 1] [--parameter KEY=VALUE]
        [--server-arg=--workers=1] [--batching-only] [--autogroup-nice -10] [--no-write]

The model is examples/torch_models.py's ``mlp_module``: FP32 [256] -> Linear(hidden) -> ReLU ->
Linear(hidden) -> ReLU -> Linear(64) -> softmax, scripted with ``torch.jit.script``; ``--hidden 4096`` is
36 M multiply-adds per sample (the model, not the frontend, is the limit on this machine), ``--hidden 1024``
2.9 M (the HTTP frontend is).

Each concurrency point is measured ``--repeats`` times; every repeat measures, back to back:

1. **Ceiling**: the scripted module called in this process under ``torch.inference_mode`` at batch sizes
   1, 8, 32, 64 and ``--max-batch-size`` (when larger), in two ways: one caller with all of torch's
   intra-op threads, and one single-threaded caller per core at once (what several instances do; on
   shared cores it often wins, because a team of OpenMP threads waits for its slowest member). The best
   samples/s of all of these is the ceiling no server can beat.
2. **Tritium, batching**: ``tritium serve`` with the model under ``dynamic_batching { }`` (with
   ``--max-queue-delay-us`` a queue delay; ``--instances``
   CPU instances, default one); wrk (another process, C) sends HTTP requests of batch 1 with the 1 KB input
   in the body (binary tensor extension, what tritonclient sends).
3. **Tritium, no batching**: the same model without a scheduling section (left out with
   ``--batching-only``).

On a machine shared with other jobs, ``--autogroup-nice -10`` (Linux, root) puts this process, the server
and wrk in a session of their own and gives that session's scheduling group nice -10: Linux shares the CPU
between sessions first (autogroups), so a plain ``nice`` has no effect against other sessions' jobs. Ceiling
and server get the same priority.

The order of 2 and 3 alternates between repeats; a point reports medians, and its "% of ceiling" is the
median of per-repeat ratios (server / ceiling measured just before). Target (issue 14): >= 85 % of the
ceiling where the frontend is not the limit. Results go to bench/RESULTS.md (section ``torch-batching``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shadows the stdlib package ``http`` when this folder is on the import path: drop it first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib and site-packages
from _harness import WRK, free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FEATURES, CLASSES = 256, 64
CEILING_BATCHES = (1, 8, 32, 64)
BEGIN, END = "<!-- torch-batching:begin -->", "<!-- torch-batching:end -->"
BATCHING, NO_BATCHING = "batching", "no batching"
MODEL_NAMES = {BATCHING: "mlp_batching", NO_BATCHING: "mlp_nobatching"}
CONFIG = """\
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {features} ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {classes} ] }} ]
instance_group [ {{ kind: KIND_CPU count: {instances} }} ]
{parameters}
{batching}
"""


def torch_models() -> Any:
    spec = importlib.util.spec_from_file_location("torch_models", ROOT / "examples" / "torch_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ceiling:
    """The scripted module in this process, loaded from the very file the server loads."""

    def __init__(self, model_file: Path, batches: tuple[int, ...]) -> None:
        import torch

        self.torch = torch
        self.module = torch.jit.load(str(model_file)).eval()
        self.threads = torch.get_num_threads()
        self.cores = os.cpu_count() or 1
        self.batches = batches
        rng = np.random.default_rng(0)
        self.inputs = {b: torch.from_numpy(rng.random((b, FEATURES), dtype=np.float32)) for b in batches}

    def _calls(self, batch: int, seconds: float) -> float:
        data = self.inputs[batch]
        with self.torch.inference_mode():
            self.module(data).numpy()
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                self.module(data).numpy()
                done += batch
        return done / (time.perf_counter() - start)

    def rate(self, batch: int, seconds: float, callers: int = 1) -> float:
        """Samples/s at ``batch``: one caller with all intra-op threads, or ``callers`` single-threaded
        callers at once (summed)."""
        if callers == 1:
            return self._calls(batch, seconds)
        rates: list[float] = []
        self.torch.set_num_threads(1)  # threads started from here on run their operators single-threaded
        try:
            workers = [threading.Thread(target=lambda: rates.append(self._calls(batch, seconds)))
                       for _ in range(callers)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            self.torch.set_num_threads(self.threads)
        return sum(rates)

    def best(self, seconds: float) -> tuple[float, str]:
        """The best samples/s over batch sizes and both ways of calling, and how it was reached."""
        ways = [(1, f"{self.threads} thr")] + ([(self.cores, f"{self.cores}x1 thr")] if self.cores > 1 else [])
        rates = {(b, label): self.rate(b, seconds, callers) for b in self.batches for callers, label in ways}
        key = max(rates, key=lambda k: rates[k])
        return rates[key], f"{key[0]}, {key[1]}"


def ceiling_batches(args: argparse.Namespace) -> tuple[int, ...]:
    """The batch sizes the ceiling tries: the usual ones, and the largest batch the server may form."""
    return tuple(sorted({*CEILING_BATCHES, args.max_batch_size}))


def batching_section(args: argparse.Namespace) -> str:
    """The served model's dynamic batching section: no queue delay unless ``--max-queue-delay-us``."""
    delay = getattr(args, "max_queue_delay_us", 0)
    return f"dynamic_batching {{ max_queue_delay_microseconds: {delay} }}" if delay else "dynamic_batching { }"


def build_repository(directory: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    builder = torch_models()
    repo = directory / "models"
    for label, name in MODEL_NAMES.items():
        builder.save_torchscript(builder.mlp_module(FEATURES, args.hidden, CLASSES), repo / name / "1" / "model.pt")
        (repo / name / "config.pbtxt").write_text(CONFIG.format(
            name=name, max_batch_size=args.max_batch_size, features=FEATURES, classes=CLASSES,
            instances=args.instances,
            batching=batching_section(args) if label == BATCHING else "",
            parameters="\n".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}'
                                  for k, v in (item.split("=", 1) for item in args.parameter)),
        ))
    return repo, repo / MODEL_NAMES[BATCHING] / "1" / "model.pt"


def start_tritium(repo: Path, port: int, log_path: Path, env: dict[str, str],
                  extra: list[str]) -> subprocess.Popen[bytes]:
    from importlib.metadata import entry_points

    command = [str(Path(sys.executable).with_name("tritium")), "serve", f"--model-repository={repo}",
               f"--http-port={port}", "--http-address=127.0.0.1", "--allow-grpc=false", "--log-info=false"]
    if any(ep.name == "metrics_prometheus" for ep in entry_points(group="tritium.plugins")):
        command.append("--allow-metrics=false")
    command += extra
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **env})


def lua_script(directory: Path) -> Path:
    data = np.random.default_rng(1).random((1, FEATURES), dtype=np.float32).tobytes()
    header = json.dumps({
        "inputs": [{"name": "INPUT__0", "shape": [1, FEATURES], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}],
    }).encode()
    body = directory / "request.body"
    body.write_bytes(header + data)
    script = directory / "request.lua"
    script.write_text(
        f'wrk.method = "POST"\nlocal f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n'
    )
    return script


def stats(port: int, model: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats", timeout=10) as response:
        entry = json.loads(response.read())["model_stats"][0]
    return int(entry["inference_count"]), int(entry["execution_count"])


def measure(port: int, label: str, script: Path, connections: int, duration: float,
            ceiling: float) -> dict[str, float]:
    model = MODEL_NAMES[label]
    before = stats(port, model)
    rps, p50, p99, errors = run_wrk(f"http://127.0.0.1:{port}/v2/models/{model}/infer", script, connections,
                                    duration, timeout_s=60)
    after = stats(port, model)
    if errors:
        raise RuntimeError(f"{label}: {errors} failed requests")
    batch = (after[0] - before[0]) / max(after[1] - before[1], 1)
    run = {"rps": rps, "p50": p50, "p99": p99, "batch": batch, "ratio": rps / ceiling}
    print(f"  {label:12} c={connections:<4} {rps:8.1f} inf/s ({run['ratio']:4.0%} of ceiling)  avg batch "
          f"{batch:5.1f}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms", flush=True)
    return run


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def render(points: list[dict[str, Any]], args: argparse.Namespace, notes: str) -> str:
    import torch

    macs = FEATURES * args.hidden + args.hidden * args.hidden + args.hidden * CLASSES
    ceilings = [p["ceiling"] for p in points]
    settings = "".join(f", `{item}`" for item in [*args.parameter, *args.server_env, *args.server_arg])
    settings += f", {args.priority}" if args.priority else ""
    labels = [BATCHING] if args.batching_only else [BATCHING, NO_BATCHING]
    ways = statistics.multimode(way for p in points for way in p["ways"])
    instances = f"{args.instances} CPU instance{'s' if args.instances > 1 else ''}"
    lines = [
        f"## PyTorch backend: TorchScript MLP, hidden {args.hidden} (bench/torch_batching.py)",
        "",
        f"Model: examples/torch_models.py `mlp_module` FP32 [{FEATURES}] -> {args.hidden} -> {args.hidden} -> "
        f"[{CLASSES}] softmax ({macs / 1e6:.1f} M multiply-adds per sample), TorchScript, torch "
        f"{torch.__version__}, {torch.get_num_threads()} intra-op threads, OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')} (server and ceiling), {instances}, max_batch_size "
        f"{args.max_batch_size}{settings}; {os.cpu_count()} cores shared by server, client and ceiling. "
        "Ceiling: the same model.pt called in-process under inference_mode at its best batch size (of "
        f"{', '.join(map(str, ceiling_batches(args)))}), by one caller with all intra-op threads or by one "
        f"single-threaded caller per core at once, whichever is faster, measured before every run: "
        f"{min(ceilings):.0f}-{max(ceilings):.0f} samples/s (most often best: batch {' / '.join(ways)}). "
        "Servers: HTTP requests of batch 1 from wrk, the 1 KB input in the "
        f"body (binary tensor extension); {args.repeats} repeats of {args.duration:g} s per point, medians; % of "
        f"ceiling = median of per-repeat ratios. batching = `{batching_section(args)}`.",
        "",
        "| conc. | ceiling inf/s | batching inf/s | % of ceiling | avg batch | p50 ms | p99 ms "
        + ("| no-batching inf/s | % of ceiling | p99 ms |" if NO_BATCHING in labels else "|"),
        "| ---: " * (7 + 3 * (NO_BATCHING in labels)) + "|",
    ]
    for p in points:
        b = p[BATCHING]
        row = (f"| {p['connections']} | {p['ceiling']:.0f} | {b['rps']:.0f} | {b['ratio']:.0%} | {b['batch']:.1f} "
               f"| {b['p50']:.1f} | {b['p99']:.1f} |")
        if NO_BATCHING in labels:
            n = p[NO_BATCHING]
            row += f" {n['rps']:.0f} | {n['ratio']:.0%} | {n['p99']:.1f} |"
        lines.append(row)
    best = max(p[BATCHING]["ratio"] for p in points)
    lines += [
        "",
        f"Target: >= 85 % of the ceiling where the frontend is not the limit: best {best:.0%} "
        f"({'met' if best >= 0.85 else 'NOT met'}).",
        "",
        f"Load average when the run ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--hidden", type=int, default=4096, help="hidden width of the MLP (default 4096)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per point (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 128])
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--instances", type=int, default=1, help="CPU instances of the served model (default 1)")
    parser.add_argument("--max-queue-delay-us", type=int, default=0,
                        help="max_queue_delay_microseconds of the batching model (default 0: none)")
    parser.add_argument("--ceiling-seconds", type=float, default=0.5, help="seconds per ceiling batch size")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a config parameter of the served model, e.g. INTRA_OP_THREAD_COUNT=1 (repeatable)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable of the server process, e.g. OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="an extra `tritium serve` argument, e.g. --server-arg=--workers=1 (repeatable)")
    parser.add_argument("--batching-only", action="store_true", help="leave out the no-batching model's runs")
    parser.add_argument("--autogroup-nice", type=int, default=None, metavar="N",
                        help="run in a new session whose scheduling autogroup has this nice value (Linux, root)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--section", default="", help="suffix of the RESULTS.md markers (several model sizes)")
    parser.add_argument("--notes", default="", help="text appended under the table")
    return parser.parse_args()


def prioritize(nice: int) -> str:
    """A session of our own (so server and wrk inherit it) with its autogroup at ``nice``; what was done."""
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    try:
        Path("/proc/self/autogroup").write_text(str(nice))
    except OSError as exc:
        print(f"--autogroup-nice {nice} not applied: {exc}", file=sys.stderr)
        return ""
    return f"session autogroup nice {nice} (server, wrk and ceiling alike)"


def main() -> int:
    args = parse_args()
    args.priority = prioritize(args.autogroup_nice) if args.autogroup_nice is not None else ""
    # The ceiling runs with the OpenMP wait policy the backend gives the server (docs/backend-torch.md), so
    # both sides share a machine the same way; set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not Path(WRK).exists():
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed (pip install 'tritium-backend-torch[cpu]')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tritium-bench-torch-") as tmp:
        directory = Path(tmp)
        repo, model_file = build_repository(directory, args)
        ceiling = Ceiling(model_file, ceiling_batches(args))
        script = lua_script(directory)
        port, log = free_port(), directory / "tritium.log"
        process = start_tritium(repo, port, log, dict(item.split("=", 1) for item in args.server_env),
                                args.server_arg)
        points: list[dict[str, Any]] = []
        try:
            try:
                wait_http_ready(port, process)
            except (RuntimeError, TimeoutError):
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            labels = [BATCHING] if args.batching_only else [BATCHING, NO_BATCHING]
            for label in labels:  # warm-up (TorchScript's profiling executor optimizes after a few calls)
                run_wrk(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAMES[label]}/infer", script, 8, 2.0, timeout_s=60)
            for connections in args.concurrency:
                runs: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
                rates: list[float] = []
                ways: list[str] = []
                for repeat in range(args.repeats):
                    for label in labels[repeat % 2:] + labels[: repeat % 2]:
                        best, way = ceiling.best(args.ceiling_seconds)
                        rates.append(best)
                        ways.append(way)
                        print(f"  ceiling      batch {way:<14} {best:8.1f} inf/s", flush=True)
                        runs[label].append(measure(port, label, script, connections, args.duration, best))
                point: dict[str, Any] = {"connections": connections, "ceiling": median(rates), "ways": ways}
                for label in labels:
                    point[label] = {key: median([r[key] for r in runs[label]]) for key in runs[label][0]}
                points.append(point)
        finally:
            stop(process)
    section = render(points, args, args.notes)
    print(section)
    if not args.no_write:
        suffix = f"-{args.section}" if args.section else ""
        write_section(BEGIN.replace("torch-batching", f"torch-batching{suffix}"),
                      END.replace("torch-batching", f"torch-batching{suffix}"), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
