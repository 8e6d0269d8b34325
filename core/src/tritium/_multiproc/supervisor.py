"""The process tree of ``tritium serve --workers N``: one executor, N workers, and this supervisor over them.

The supervisor owns no model and serves no client. It reserves the frontends' ports first (see
:mod:`tritium._multiproc.ports`: a taken port is refused, port 0 becomes one port), makes the server's private
run directory (mode 0700: the executor's socket, the shared memory table, the options), starts the executor and
waits until its models are loaded (its socket appears), then starts the workers, which join the reserved ports
with ``SO_REUSEPORT``. Afterwards it keeps the tree whole:

- a worker that dies is started again (the other workers keep serving meanwhile);
- an executor that dies is started again; until it has reloaded its models the workers report the server
  not ready and answer requests with UNAVAILABLE;
- SIGTERM/SIGINT goes to every process at once: each drains within ``--exit-timeout-secs`` as a single
  process does, and whatever still runs after that (plus a margin) is killed.

A process that keeps dying right after its start is restarted with a growing delay (up to
:data:`MAX_RESTART_DELAY_S`), so a broken model or port does not spin the machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tritium._base.options import ServerOptions
from tritium._multiproc.child import EXECUTOR_STARTUP_FAILED, OPTIONS_NAME
from tritium._multiproc.handshake import SOCKET_NAME
from tritium._multiproc.ports import PortReservation, release_ports, reserve_ports
from tritium._multiproc.roles import WORKER_STARTUP_FAILED
from tritium._multiproc.shm_table import create_table
from tritium._runtime.server import SHUTDOWN_MARGIN_SECS, StartupError

_log = logging.getLogger("tritium.server")

MAX_RESTART_DELAY_S = 10.0
STABLE_AFTER_S = 10.0
"""A process that ran this long before dying is restarted at once (its restart delay starts over)."""
KILL_GRACE_S = 5.0


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup v2/v1 CPU quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota + 0.999)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


class _Child:
    """One supervised process slot (the executor, or worker ``index``)."""

    def __init__(self, role: str, index: int) -> None:
        self.role = role
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.delay = 0.0

    @property
    def label(self) -> str:
        return "model executor" if self.role == "executor" else f"worker {self.index}"


class Supervisor:
    """Runs a server as one executor and ``workers`` worker processes (see the module docstring);
    ``frontends`` are the installed frontends' specs, whose ports it reserves."""

    def __init__(self, options: ServerOptions, workers: int, frontends: Mapping[str, Any] | None = None) -> None:
        self.options = options
        self.workers = workers
        self.frontends = dict(frontends or {})
        self._stopping = False
        self._failed = False
        self._stop: asyncio.Event | None = None
        self._run_dir: Path | None = None
        self._children: list[_Child] = []

    async def serve(self) -> int:
        """Start the tree, keep it whole until SIGINT/SIGTERM, then stop it. Returns the exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        self._stop = stop
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        ports = reserve_ports(self.frontends, self.options)  # StartupError: a port is taken
        self._run_dir = Path(tempfile.mkdtemp(prefix="tritium-"))
        try:
            return await self._serve(stop, ports)
        finally:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            release_ports(ports)

    async def _serve(self, stop: asyncio.Event, ports: list[PortReservation]) -> int:
        assert self._run_dir is not None
        with open(self._run_dir / OPTIONS_NAME, "wb") as file:
            pickle.dump((self.options, self.workers, {p.frontend: p.port for p in ports}), file)
        create_table(self._run_dir)
        executor = _Child("executor", 0)
        self._children.append(executor)
        await self._spawn(executor)
        code = await self._wait_executor_up(executor, stop)
        if code is not None:
            await self._terminate()
            if code == EXECUTOR_STARTUP_FAILED:
                return 1  # the executor said why, as a single process would have
            if code:
                raise StartupError(f"the model executor exited with status {code} while starting")
            return 0
        self._children.extend(_Child("worker", i) for i in range(self.workers))
        for child in self._children[1:]:
            await self._spawn(child)
        _log.info("serving with %d worker process(es) and one model executor", self.workers)
        watchers = {asyncio.ensure_future(self._watch(child)) for child in self._children}
        try:
            await stop.wait()
        finally:
            self._stopping = True
            if not self._failed:
                _log.info("signal received: stopping (exit timeout %.0fs)", self.options.exit_timeout_secs)
            await self._terminate()  # like a single process: 0 even when the exit timeout cut requests short
            for watcher in watchers:
                watcher.cancel()
        return 1 if self._failed else 0

    async def _spawn(self, child: _Child) -> None:
        assert self._run_dir is not None
        child.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tritium._multiproc.child",
            child.role,
            str(child.index),
            str(self._run_dir),
            str(os.getpid()),
            stdin=asyncio.subprocess.DEVNULL,
        )
        child.started_at = time.monotonic()

    async def _wait_executor_up(self, executor: _Child, stop: asyncio.Event) -> int | None:
        """None once the executor listens; its exit code if it exited first (or 0 when stopped meanwhile)."""
        assert self._run_dir is not None and executor.process is not None
        socket_path = self._run_dir / SOCKET_NAME
        while not socket_path.exists():
            if executor.process.returncode is not None:
                return executor.process.returncode or 1
            if stop.is_set():
                return 0
            await asyncio.sleep(0.05)
        return None

    async def _watch(self, child: _Child) -> None:
        """Restart ``child`` whenever it exits while the server is not stopping."""
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                return
            if child.role == "worker" and code == WORKER_STARTUP_FAILED:
                _log.error("worker %d could not start its frontends: stopping the server", child.index)
                self._failed = True
                assert self._stop is not None
                self._stop.set()
                return
            ran = time.monotonic() - child.started_at
            child.delay = 0.0 if ran >= STABLE_AFTER_S else min(max(child.delay * 2, 0.25), MAX_RESTART_DELAY_S)
            _log.error(
                "%s (pid %d) exited with status %s; starting it again%s",
                child.label,
                child.process.pid,
                code,
                f" in {child.delay:.2f}s" if child.delay else "",
            )
            if child.role == "executor" and self._run_dir is not None:
                try:
                    (self._run_dir / SOCKET_NAME).unlink()
                except OSError:
                    pass
            await asyncio.sleep(child.delay)
            if self._stopping:
                return
            await self._spawn(child)

    async def _terminate(self) -> bool:
        """SIGTERM to every process, wait for them within the exit timeout and margin, kill what is left."""
        running = [c.process for c in self._children if c.process is not None and c.process.returncode is None]
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        budget = self.options.exit_timeout_secs + 2 * SHUTDOWN_MARGIN_SECS + KILL_GRACE_S
        waits = [asyncio.ensure_future(p.wait()) for p in running]
        clean = True
        if waits:
            _, pending = await asyncio.wait(waits, timeout=budget)
            if pending:
                clean = False
                for process in running:
                    if process.returncode is None:
                        _log.warning("process %d did not stop in time: killing it", process.pid)
                        try:
                            process.kill()
                        except ProcessLookupError:
                            pass
                await asyncio.wait(waits, timeout=KILL_GRACE_S)
        return clean and all(p.returncode == 0 for p in running)
