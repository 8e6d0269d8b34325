#!/usr/bin/env python3
"""Python backend benchmark: the same ``model.py`` in Tritium (isolated and in-process) and in real Triton 2.51.

    .venv/bin/python bench/python_backend.py [--duration 3] [--rounds 3] [--concurrency 1 16 64]
        [--triton VENV] [--no-write]

The model is a small numpy model written as Triton's Python backend expects (``TritonPythonModel`` with
``pb_utils``): INPUT0, INPUT1 INT32 [16] -> OUTPUT0 = sum, OUTPUT1 = difference, ``max_batch_size: 8``, no
dynamic batching (one request per ``execute``). Servers, all on loopback, all running that same file:

* ``isolated``: ``tritium serve``, the model in its default mode (a stub process per instance, tensors
  through shared memory);
* ``in-process``: the same server, a second copy of the model with ``TRITIUM_EXECUTION_MODE: in-process``;
* ``triton``: real Triton 2.51 (``--triton VENV``, or ``TRITIUM_BENCH_TRITON``: a virtual environment
  prepared as ../shared/reference/real-triton.md says, the server copied to ``VENV/server``).

``TRITIUM_BENCH_FLAGS`` adds flags to ``tritium serve`` (e.g. ``--inline-execution-us=2000``).

wrk sends the JSON request of bench/http.py (one client thread, keep-alive connections = concurrency). The
servers are measured interleaved (every round runs each concurrency on each server in turn), ``--rounds``
times, and the table keeps the medians. Target: Tritium isolated >= Triton at every concurrency. Results go
to the ``python-backend`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shadows the stdlib package ``http`` when this folder is on the import path: drop it first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib and site-packages
from _harness import free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402
from _triton import check_venv, start_triton  # noqa: E402

BEGIN, END = "<!-- python-backend:begin -->", "<!-- python-backend:end -->"
ISOLATED, IN_PROCESS, TRITON = "isolated", "in-process", "triton"
MODEL_NAMES = {ISOLATED: "bench_python", IN_PROCESS: "bench_python_inprocess", TRITON: "bench_python"}

MODEL_PY = '''\
"""Benchmark model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32 [16]), numpy only."""

import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.dtype = pb_utils.triton_string_to_numpy(
            pb_utils.get_output_config_by_name(config, "OUTPUT0")["data_type"]
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("OUTPUT0", (a + b).astype(self.dtype)),
                        pb_utils.Tensor("OUTPUT1", (a - b).astype(self.dtype)),
                    ]
                )
            )
        return responses
'''

CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 8
input [
  {{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }},
  {{ name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }}
]
output [
  {{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }},
  {{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }}
]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
{extra}"""

EXTRA_FLAGS = [f for f in os.environ.get("TRITIUM_BENCH_FLAGS", "").split() if f]
IN_PROCESS_PARAMETER = 'parameters { key: "TRITIUM_EXECUTION_MODE" value { string_value: "in-process" } }\n'

JSON_BODY = json.dumps(
    {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
        ]
    }
)


def write_model(repo: Path, name: str, extra: str = "") -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(MODEL_PY)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, extra=extra))


def lua_script(directory: Path) -> Path:
    body = directory / "request.json"
    body.write_text(JSON_BODY)
    script = directory / "request.lua"
    script.write_text(
        f'wrk.method = "POST"\nlocal f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def start_tritium(repo: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("tritium")), "serve", f"--model-repository={repo}",
        f"--http-port={port}", "--http-address=127.0.0.1", "--allow-grpc=false", "--log-info=false", *EXTRA_FLAGS,
    ]
    from importlib.metadata import entry_points

    if any(ep.name == "metrics_prometheus" for ep in entry_points(group="tritium.plugins")):
        command.append("--allow-metrics=false")
    return subprocess.Popen(command, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def check_answer(port: int, model: str) -> None:
    """One request with the benchmark's body: the servers must compute the right thing."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer", data=JSON_BODY.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = {o["name"]: o["data"] for o in json.loads(response.read())["outputs"]}
    assert outputs["OUTPUT0"] == [2 * i for i in range(16)] and outputs["OUTPUT1"] == [0] * 16, outputs


def measure(args: argparse.Namespace, directory: Path) -> tuple[dict[tuple[str, int], list[tuple[float, ...]]], str]:
    repo = directory / "tritium-models"
    write_model(repo, MODEL_NAMES[ISOLATED])
    write_model(repo, MODEL_NAMES[IN_PROCESS], IN_PROCESS_PARAMETER)
    script = lua_script(directory)
    processes: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        port = free_port()
        processes.append(start_tritium(repo, port, directory / "tritium.log"))
        wait_http_ready(port, processes[-1])
        ports[ISOLATED] = ports[IN_PROCESS] = port
        if args.triton is not None:
            triton_repo = directory / "triton-models"
            write_model(triton_repo, MODEL_NAMES[TRITON])
            port = free_port()
            processes.append(start_triton(args.triton.resolve(), triton_repo, port, free_port(), free_port(),
                                          directory / "triton.log"))
            wait_http_ready(port, processes[-1])
            ports[TRITON] = port
        for server, port in ports.items():
            check_answer(port, MODEL_NAMES[server])
        samples: dict[tuple[str, int], list[tuple[float, ...]]] = {}
        for server, port in ports.items():  # warm-up
            run_wrk(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAMES[server]}/infer", script, 16, 1)
        for round_index in range(args.rounds):
            for concurrency in args.concurrency:
                for server, port in ports.items():
                    url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAMES[server]}/infer"
                    rps, p50, p99, errors = run_wrk(url, script, concurrency, args.duration)
                    if errors:
                        raise RuntimeError(f"{server}: {errors} non-2xx responses at concurrency {concurrency}")
                    samples.setdefault((server, concurrency), []).append((rps, p50, p99))
                    print(f"round {round_index + 1} c={concurrency} {server}: {rps:.0f} req/s "
                          f"p50 {p50:.2f} ms p99 {p99:.2f} ms", flush=True)
        load = os.getloadavg()[0]
        return samples, f"Load average when the run ended: {load:.1f} on {os.cpu_count()} cores."
    finally:
        for process in processes:
            stop(process)


def render(samples: dict[tuple[str, int], list[tuple[float, ...]]], args: argparse.Namespace, notes: str) -> str:
    servers = [s for s in (ISOLATED, IN_PROCESS, TRITON) if (s, args.concurrency[0]) in samples]
    head = "| conc. | " + " | ".join(f"{s} req/s | p50 ms | p99 ms" for s in servers)
    if TRITON in servers:
        head += " | isolated / Triton | in-process / Triton"
    lines = [
        "## Python backend (bench/python_backend.py)",
        "",
        "The same `model.py` (numpy, INT32 [16] x2 -> sum, difference; `max_batch_size: 8`, no dynamic batching) "
        "in Tritium's default isolated mode (stub process, shared memory), in Tritium's in-process mode, and "
        f"in real Triton 2.51's Python backend; wrk JSON requests, {args.duration:g} s per point, servers "
        f"interleaved, medians of {args.rounds} rounds; loopback, {os.cpu_count()} cores shared by servers and "
        "wrk. Target: isolated >= Triton at every concurrency."
        + (f" Tritium flags: `{' '.join(EXTRA_FLAGS)}`." if EXTRA_FLAGS else ""),
        "",
        head + " |",
        "| ---: " * (1 + 3 * len(servers) + (2 if TRITON in servers else 0)) + "|",
    ]
    verdicts = []
    for concurrency in args.concurrency:
        cells = [str(concurrency)]
        medians = {}
        for server in servers:
            points = samples[(server, concurrency)]
            medians[server] = statistics.median(p[0] for p in points)
            cells += [f"{medians[server]:.0f}", f"{statistics.median(p[1] for p in points):.2f}",
                      f"{statistics.median(p[2] for p in points):.2f}"]
        if TRITON in servers:
            ratios = [statistics.median(a[0] / b[0] for a, b in zip(samples[(s, concurrency)],
                                                                    samples[(TRITON, concurrency)], strict=True))
                      for s in (ISOLATED, IN_PROCESS)]
            cells += [f"{r:.0%}" for r in ratios]
            verdicts.append(ratios[0] >= 1.0)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if verdicts:
        lines.append(f"Target (isolated >= Triton at every concurrency): {'met' if all(verdicts) else 'NOT met'}.")
    else:
        lines.append("Triton was not measured in this run (no --triton VENV).")
    lines += ["", notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    default_triton = os.environ.get("TRITIUM_BENCH_TRITON")
    parser.add_argument("--triton", type=Path, metavar="VENV", default=Path(default_triton) if default_triton else None,
                        help="also measure real Triton 2.51 from VENV (default: $TRITIUM_BENCH_TRITON)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.triton is not None and (problem := check_venv(args.triton)):
        parser.error(problem)
    with tempfile.TemporaryDirectory(prefix="tritium-bench-python-") as tmp:
        samples, notes = measure(args, Path(tmp))
    table = render(samples, args, notes)
    print(table)
    if not args.no_write:
        write_section(BEGIN, END, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
