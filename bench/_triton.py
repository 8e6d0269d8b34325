"""Real NVIDIA Triton 2.51 beside Tritium in a benchmark, as ../shared/reference/real-triton.md sets it up.

That Triton build has no onnxruntime backend, so an ONNX model runs there as a *twin*: the same config with
``backend: "python"`` and a ``model.py`` (written here) that runs the same .onnx file with onnxruntime,
concatenating the requests of a batch and slicing the output back, as a Python-backend model does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TWIN_MODEL = '''\
"""Benchmark twin: runs net.onnx with onnxruntime inside Triton's Python backend, a batch per execute()."""

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(os.path.dirname(__file__), "net.onnx")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        output = self.session.run(None, {"INPUT0": batch})[0]
        responses, offset = [], 0
        for array in arrays:
            size = array.shape[0]
            tensor = pb_utils.Tensor("OUTPUT0", output[offset : offset + size])
            responses.append(pb_utils.InferenceResponse([tensor]))
            offset += size
        return responses
'''


def write_twin(repo: Path, name: str, config: str, model_file: Path) -> None:
    """Model ``name`` in ``repo`` as a Python-backend twin of the ONNX ``model_file`` with this ``config``
    (whose ``platform`` line is replaced by ``backend: "python"``)."""
    folder = repo / name / "1"
    folder.mkdir(parents=True)
    shutil.copy(model_file, folder / "net.onnx")  # not model.onnx: Triton would pick its absent onnx backend
    (folder / "model.py").write_text(TWIN_MODEL)
    lines = ['backend: "python"' if line.startswith("platform:") else line for line in config.splitlines()]
    (repo / name / "config.pbtxt").write_text("\n".join(lines) + "\n")


def check_venv(venv: Path) -> str | None:
    """Why ``venv`` cannot run real Triton here (None when it can)."""
    if not any((venv / "lib").glob("python3*/site-packages/pytriton")):
        return f"{venv}: no nvidia-pytriton installed there (see ../shared/reference/real-triton.md)"
    if not (venv / "server" / "bin" / "tritonserver").exists():
        return f"{venv}/server/bin/tritonserver not found: copy the server there as real-triton.md says"
    return None


def start_triton(venv: Path, repo: Path, http_port: int, grpc_port: int, metrics_port: int, log_path: Path
                 ) -> subprocess.Popen[bytes]:
    """``tritonserver`` from the virtual environment ``venv`` prepared as real-triton.md says (with the
    server copied to ``venv/server``), serving ``repo`` on loopback."""
    problem = check_venv(venv)
    if problem:
        raise FileNotFoundError(problem)
    site = next((venv / "lib").glob("python3*/site-packages"))
    server = venv / "server"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{site / 'nvidia_pytriton.libs'}:{Path(sys.base_prefix) / 'lib'}"
    env["PYTHONPATH"] = str(site)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    command = [
        str(server / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={server / 'backends'}",
        f"--cache-directory={server / 'caches'}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        f"--metrics-port={metrics_port}",
        "--allow-metrics=false",
        "--log-info=false",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
