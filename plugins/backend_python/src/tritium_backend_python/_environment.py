"""The interpreter a stub process runs: the server's own, or the one of the model's ``EXECUTION_ENV_PATH``.

``EXECUTION_ENV_PATH`` may name (after replacing ``$$TRITON_MODEL_DIRECTORY`` with the model's folder;
relative paths are relative to it):

- a virtual environment or conda environment folder (Tritium's addition): its ``bin/python`` runs the stub;
- a packed environment, as Triton takes it: a ``.tar.gz`` / ``.tgz`` / ``.tar`` made by ``conda-pack`` (or
  any archive of an environment with ``bin/python``). It is unpacked once into a cache folder in the
  system's temporary directory (keyed by the archive's path, size and modification time), and its
  ``bin/conda-unpack`` is run when present.

The interpreter must import numpy (the stub needs it); anything unusable is a :class:`tritium.ConfigError`
naming the model, the path and the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from tritium import ConfigError

_ARCHIVES = (".tar.gz", ".tgz", ".tar")


def resolve_env_path(env_path: str, model_dir: Path) -> Path:
    path = Path(env_path.replace("$$TRITON_MODEL_DIRECTORY", str(model_dir)))
    return path if path.is_absolute() else model_dir / path


class Interpreters:
    """Finds and checks the interpreter of each environment once (several instances share the result)."""

    def __init__(self) -> None:
        self._checked: dict[Path, Path] = {}
        self._lock = threading.Lock()

    def for_model(self, env_path: str | None, model_name: str, model_dir: Path, timeout_s: float) -> Path:
        if env_path is None:
            return Path(sys.executable)
        path = resolve_env_path(env_path, model_dir)
        with self._lock:
            known = self._checked.get(path)
            if known is not None:
                return known
            python = self._locate(path, model_name)
            _check(python, path, model_name, timeout_s)
            self._checked[path] = python
            return python

    def _locate(self, path: Path, model_name: str) -> Path:
        where = f"model '{model_name}': EXECUTION_ENV_PATH '{path}'"
        if path.is_dir():
            root = path
        elif path.is_file() and path.name.endswith(_ARCHIVES):
            root = _unpack(path, where)
        elif path.exists():
            raise ConfigError(f"{where} is neither an environment folder nor a .tar.gz/.tgz/.tar archive")
        else:
            raise ConfigError(f"{where} does not exist")
        for name in ("bin/python", "bin/python3"):
            candidate = root / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        raise ConfigError(f"{where} has no bin/python")


def _unpack(archive: Path, where: str) -> Path:
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    cache = Path(tempfile.gettempdir()) / f"tritium-python-envs-{os.getuid()}"
    cache.mkdir(mode=0o700, exist_ok=True)
    if not _trusted(cache):
        raise ConfigError(f"{where}: the cache folder {cache} is not this user's private folder; remove it")
    target = cache / key
    if _trusted(target):
        return target
    staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        unpack = staging / "bin" / "conda-unpack"
        python = staging / "bin" / "python"
        if unpack.is_file() and python.is_file():
            done = subprocess.run([str(python), str(unpack)], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise ConfigError(f"{where}: conda-unpack failed: {done.stderr.strip()[-500:]}")
        try:
            staging.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(f"{where} cannot be unpacked: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _trusted(path: Path) -> bool:
    """A real folder of this user that nobody else can write to."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _check(python: Path, path: Path, model_name: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(
            [str(python), "-c", "import sys, numpy; assert sys.version_info >= (3, 10)"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"model '{model_name}': EXECUTION_ENV_PATH '{path}' is unusable: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["exit status " + str(done.returncode)])[-1]
        raise ConfigError(
            f"model '{model_name}': EXECUTION_ENV_PATH '{path}' is unusable: its interpreter {python} cannot "
            f"run the stub ({reason}); it needs Python 3.10+ with numpy"
        )
