#!/usr/bin/env python3
"""HTTP benchmark: Tritium's HTTP frontend against a bare aiohttp handler running the same ONNX model.

    .venv/bin/python bench/http.py [--duration 3] [--concurrency 1 16 64] [--no-write]

Both servers serve the example ``simple`` model (INT32 [1,16] x2 -> sum, difference; onnxruntime):

* ``tritium``: ``tritium serve`` (explicit mode, only ``simple`` loaded, gRPC off);
* ``bare``: one aiohttp route that parses the request (orjson / the binary tail), runs the same ONNX
  session inline and returns a fixed, precomputed response: the floor of a Python HTTP server here.

wrk (``/usr/bin/wrk``) drives each at every concurrency with a JSON request and a binary request (the body
tritonclient sends by default), a few seconds per point. Results (req/s, p50, p99, and Tritium's share of
the bare handler's throughput; target >= 70 %) go to the ``http`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib package ``http``: drop its folder from the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the stdlib, which keeps `http` its own
from _harness import WRK, free_port, run_wrk, stop, wait_http_ready, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- http:begin -->", "<!-- http:end -->"

INPUT = list(range(16))
JSON_BODY = json.dumps(
    {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": INPUT},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": INPUT},
        ]
    }
)


def binary_body() -> tuple[bytes, int]:
    import numpy as np

    header = json.dumps(
        {
            "inputs": [
                {"name": f"INPUT{i}", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}}
                for i in range(2)
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    data = np.arange(16, dtype=np.int32).tobytes()
    return header + data + data, len(header)


# ------------------------------------------------------------------------------------------ bare server
BARE_SERVER = r"""
import sys
import numpy as np, orjson, onnxruntime as ort
from aiohttp import web

model_path, port = sys.argv[1], int(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
x = np.arange(16, dtype=np.int32).reshape(1, 16)
out = session.run(None, {"INPUT0": x, "INPUT1": x})
FIXED_JSON = orjson.dumps({"model_name": "simple", "model_version": "1", "outputs": [
    {"name": "OUTPUT0", "datatype": "INT32", "shape": [1, 16], "data": out[0].reshape(-1).tolist()},
    {"name": "OUTPUT1", "datatype": "INT32", "shape": [1, 16], "data": out[1].reshape(-1).tolist()}]})
header = orjson.dumps({"model_name": "simple", "model_version": "1", "outputs": [
    {"name": n, "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}}
    for n in ("OUTPUT0", "OUTPUT1")]})
FIXED_BINARY = header + out[0].tobytes() + out[1].tobytes()
BINARY_HEADERS = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}

async def infer(request):
    body = await request.read()
    length = request.headers.get("Inference-Header-Content-Length")
    if length is None:
        doc = orjson.loads(body)
        feeds = {t["name"]: np.array(t["data"], dtype=np.int32).reshape(t["shape"]) for t in doc["inputs"]}
        session.run(None, feeds)
        return web.Response(body=FIXED_JSON, content_type="application/json")
    n = int(length)
    doc = orjson.loads(body[:n])
    offset, feeds = n, {}
    for t in doc["inputs"]:
        size = t["parameters"]["binary_data_size"]
        feeds[t["name"]] = np.frombuffer(body, np.int32, size // 4, offset).reshape(t["shape"])
        offset += size
    session.run(None, feeds)
    return web.Response(body=FIXED_BINARY, headers=BINARY_HEADERS)

app = web.Application()
app.router.add_post("/v2/models/simple/infer", infer)
app.router.add_get("/v2/health/ready", lambda r: web.Response())
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v2/models/simple/infer"


def lua_script(directory: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    body_path = directory / f"{name}.body"
    body_path.write_bytes(body)
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = directory / f"{name}.lua"
    script.write_text(
        f'wrk.method = "POST"\nlocal f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f"{header_lines}\n"
    )
    return script


def build_repository(directory: Path) -> Path:
    repo = directory / "models"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build_repository.py"), str(repo)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return repo


def start_tritium(repo: Path, port: int) -> subprocess.Popen[bytes]:
    tritium = Path(sys.executable).with_name("tritium")
    command = [
        str(tritium),
        "serve",
        f"--model-repository={repo}",
        "--model-control-mode=explicit",
        "--load-model=simple",
        f"--http-port={port}",
        "--http-address=127.0.0.1",
        "--allow-grpc=false",
        "--log-info=false",
    ]
    from importlib.metadata import entry_points

    if any(ep.name == "metrics_prometheus" for ep in entry_points(group="tritium.plugins")):
        command.append("--allow-metrics=false")
    log = open(repo.parent / "tritium.log", "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def start_bare(repo: Path, port: int, directory: Path) -> subprocess.Popen[bytes]:
    script = directory / "bare_server.py"
    script.write_text(BARE_SERVER)
    model = repo / "simple" / "1" / "model.onnx"
    log = open(directory / "bare.log", "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen([sys.executable, str(script), str(model), str(port)], stdout=log, stderr=subprocess.STDOUT)


def write_results(rows: list[dict[str, object]], duration: float, notes: str) -> str:
    lines = [
        "## HTTP frontend (bench/http.py)",
        "",
        f"wrk, {duration:g} s per point, model `simple` (INT32 [1,16] x2, onnxruntime), loopback, "
        f"{os.cpu_count()} cores; `bare` = one aiohttp route running the same ONNX session inline with a fixed "
        "response. Target: Tritium >= 70 % of bare at every point.",
        "",
        "| request | conc. | Tritium req/s | p50 ms | p99 ms | bare req/s | p50 ms | p99 ms | Tritium/bare |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['kind']} | {row['c']} | {row['t_rps']:.0f} | {row['t_p50']:.2f} | {row['t_p99']:.2f} | "
            f"{row['b_rps']:.0f} | {row['b_p50']:.2f} | {row['b_p99']:.2f} | {row['ratio']:.0%} |"
        )
    if notes:
        lines += ["", notes.strip()]
    section = "\n".join(lines) + "\n"
    write_section(BEGIN, END, section)
    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--notes", default="", help="text appended under the table (e.g. profile notes)")
    args = parser.parse_args()
    if not Path(WRK).exists():
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tritium-bench-http-") as tmp:
        directory = Path(tmp)
        repo = build_repository(directory)
        binary, header_length = binary_body()
        scripts = {
            "JSON": lua_script(directory, "json", JSON_BODY.encode(), {}),
            "binary": lua_script(directory, "binary", binary, {"Inference-Header-Content-Length": str(header_length)}),
        }
        results: dict[tuple[str, str, int], tuple[float, float, float, int]] = {}
        for server in ("tritium", "bare"):
            port = free_port()
            process = start_tritium(repo, port) if server == "tritium" else start_bare(repo, port, directory)
            try:
                try:
                    wait_http_ready(port, process, timeout=60.0)
                except RuntimeError:
                    for log in directory.glob("*.log"):
                        print(log.name, log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                for kind, script in scripts.items():
                    run_wrk(url(port), script, 8, 1.0, threads=2)  # warm-up
                    for connections in args.concurrency:
                        threads = 1 if connections == 1 else 2
                        results[(server, kind, connections)] = run_wrk(
                            url(port), script, connections, args.duration, threads=threads
                        )
                        rps, p50, p99, errors = results[(server, kind, connections)]
                        print(
                            f"{server:8} {kind:6} c={connections:<3} {rps:9.0f} req/s  p50 {p50:.2f} ms  "
                            f"p99 {p99:.2f} ms  non-2xx {errors}"
                        )
                        if errors:
                            raise RuntimeError(f"{server} answered {errors} errors")
            finally:
                stop(process)
        rows = []
        for kind in scripts:
            for connections in args.concurrency:
                t = results[("tritium", kind, connections)]
                b = results[("bare", kind, connections)]
                rows.append(
                    {
                        "kind": kind,
                        "c": connections,
                        "t_rps": t[0],
                        "t_p50": t[1],
                        "t_p99": t[2],
                        "b_rps": b[0],
                        "b_p50": b[1],
                        "b_p99": b[2],
                        "ratio": t[0] / b[0] if b[0] else 0.0,
                    }
                )
        if not args.no_write:
            print(write_results(rows, args.duration, args.notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
