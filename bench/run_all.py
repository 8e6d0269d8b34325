#!/usr/bin/env python3
"""Run every benchmark and update bench/RESULTS.md (what `make bench` does): HTTP, gRPC, dynamic batching,
the Python backend, multi-process serving.

Each benchmark starts its own servers on free loopback ports, drives them for a bounded time and stops them.
Extra arguments are passed to none of them; run a single script directly to tune it. With
``TRITIUM_BENCH_TRITON=<venv>`` (real Triton 2.51 prepared as ../shared/reference/real-triton.md says, the
server copied to ``<venv>/server``) the batching and Python-backend benchmarks also measure real Triton side
by side (bench/multiprocess.py also finds it in /tmp/triton-ref).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRITON = ["--triton", os.environ["TRITIUM_BENCH_TRITON"]] if os.environ.get("TRITIUM_BENCH_TRITON") else []
BENCHMARKS = (
    ("HTTP", [str(HERE / "http.py")]),
    ("gRPC", [str(HERE / "grpc_bench.py"), "--write-results"]),
    ("dynamic batching, example model", [str(HERE / "batching.py"), *TRITON]),
    ("dynamic batching, medium_cnn", [str(HERE / "batching.py"), "--model", "medium_cnn", *TRITON]),
    ("Python backend", [str(HERE / "python_backend.py"), *TRITON]),
    ("multi-process serving", [str(HERE / "multiprocess.py"), *TRITON]),
    ("TensorFlow backend", [str(HERE / "tf_backend.py")]),
    ("PyTorch backend, MLP hidden 1024", [str(HERE / "torch_batching.py"), "--hidden", "1024", "--section", "mlp1024"]),
    ("PyTorch backend, MLP hidden 4096", [str(HERE / "torch_batching.py"), "--hidden", "4096", "--section", "mlp4096"]),
    (
        "PyTorch backend, MLP hidden 8192, one single-threaded instance per core",
        [
            str(HERE / "torch_batching.py"), "--hidden", "8192", "--section", "mlp8192", "--repeats", "5",
            "--instances", str(os.cpu_count() or 1), "--parameter", "INTRA_OP_THREAD_COUNT=1",
            "--max-queue-delay-us", "20000",
        ],
    ),
)


def main() -> int:
    failed = []
    for name, command in BENCHMARKS:
        print(f"== {name}: {' '.join(command)}", flush=True)
        if subprocess.run([sys.executable, *command], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"results: {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
