"""What the executor process and each worker process run, from start to shutdown.

Both are started by the supervisor (:mod:`tritium._multiproc.supervisor`) through
:mod:`tritium._multiproc.child`, read the server's options from the run directory, load the same plugins, and
stop gracefully on SIGTERM within the exit timeout, like a single-process server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tritium._base.errors import ConfigError, PluginError, TritiumError
from tritium._base.options import ServerOptions
from tritium._multiproc.busy_poll import BusyPoll
from tritium._multiproc.executor import ExecutorBridge
from tritium._multiproc.local_models import LocalModels
from tritium._multiproc.remote_service import RemoteService
from tritium._multiproc.shm_table import TABLE_NAME, SharedRegistry
from tritium._plugins.host import PluginHost
from tritium._runtime.heap import freeze_long_lived
from tritium._runtime.server import (
    EXIT_TIMEOUT_MESSAGE,
    SHUTDOWN_MARGIN_SECS,
    Server,
    create_components,
)

_log = logging.getLogger("tritium.server")

WORKER_STARTUP_FAILED = 4
"""A worker's exit status when its frontends could not start (reported already): the server stops."""
ARENA_SIZE = 64 << 20
"""Bytes of each shared-memory ring between a worker and the executor (one per direction and worker). Pages
are touched only as the ring is used; a tensor that does not fit travels through the socket instead."""


def _stop_event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


async def run_executor(options: ServerOptions, host: PluginHost, run_dir: Path) -> int:
    """Load the models, serve the workers until SIGTERM, then drain and unload like ``tritium serve``."""
    stop = _stop_event()
    server = Server(options, host=host, serve_frontends=False)
    await server.start()
    bridge = ExecutorBridge(
        server.service, run_dir, ARENA_SIZE, server.emit, BusyPoll(options.worker_poll_us / 1e6)
    )
    server.add_event_handler(bridge.on_event)
    await bridge.control_log.replay(server.service)  # a restart: the models the API had loaded, again
    freeze_long_lived()  # before the workers connect: its collection pauses the loop once, here
    await bridge.start()
    _log.info("model executor ready (pid %d)", os.getpid())
    try:
        await stop.wait()
    finally:
        await _drain_executor(options, server, bridge)
    return 0


async def _drain_executor(options: ServerOptions, server: Server, bridge: ExecutorBridge) -> None:
    """New requests are refused (503) at once; the models stay loaded, answering the requests in flight and
    the workers' questions, until every worker has drained and disconnected or the exit timeout passed; then
    the single-process shutdown (requests still queued answered with the exit-timeout error, models
    unloaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.exit_timeout_secs
    server.service.begin_shutdown()
    while bridge.sessions and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await server.stop(max(deadline - loop.time(), 0.0))
    await bridge.stop()


def _frontend_options(worker_index: int, workers: int, ports: Mapping[str, int]) -> Any:
    """Every worker runs the frontends that share their port (on the port the supervisor reserved), the first
    worker also the others."""

    def adjust(spec: Any, resolved: dict[str, Any]) -> dict[str, Any] | None:
        option = getattr(spec, "reuse_port_option", None)
        if option is None:
            return resolved if worker_index == 0 else None
        if workers > 1:
            resolved[option] = True
        if spec.name in ports:  # reserved through the spec's port_option
            resolved[spec.port_option] = ports[spec.name]
        return resolved

    return adjust


class AnnouncedOnce(logging.Filter):
    """Drops the frontends' own startup announcements (Triton's ``Started HTTPService at ...`` lines, from a
    ``tritium.frontend.*`` logger) in every worker but the first: the server logs each listener once, as one
    process does, and scripts that wait for the line find it once. The kernel's ``worker N: started ...``
    lines stay, one per worker."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("tritium.frontend")
            and isinstance(record.msg, str)
            and record.msg.startswith("Started ")
        )


def announce_once(worker_index: int) -> None:
    """In worker ``worker_index`` > 0, keep the frontends' startup announcements out of the log."""
    if worker_index > 0:
        for handler in logging.getLogger().handlers:
            handler.addFilter(AnnouncedOnce())


async def run_worker(
    options: ServerOptions,
    host: PluginHost,
    run_dir: Path,
    worker_index: int,
    workers: int,
    ports: Mapping[str, int] | None = None,
) -> int:
    """Serve the frontends on the executor's data plane until SIGTERM, then drain within the exit timeout."""
    stop = _stop_event()
    announce_once(worker_index)
    registry = SharedRegistry(allowed=options.allow_client_shm, table=run_dir / TABLE_NAME)
    service = RemoteService(run_dir, worker_index, registry, ARENA_SIZE, BusyPoll(options.worker_poll_us / 1e6))
    local = LocalModels(options, host, service.forward)
    await local.start()
    service.local = local
    starting = asyncio.ensure_future(service.start())
    waiting = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, waiting], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await service.close()
        await local.stop(0)
        return 0
    running: list[Any] = []
    try:
        try:
            frontends = create_components(
                "frontend", host.frontends, options, service, _frontend_options(worker_index, workers, ports or {})
            )
            service.mark_live()
            for frontend in frontends:
                await frontend.start()
                running.append(frontend)
                _log.info("worker %d: started %s", worker_index, frontend.describe())
        except (ConfigError, PluginError, TritiumError, OSError) as exc:
            # A frontend that cannot start (bad TLS files, port taken) would fail again on every restart:
            # say why, as a single process does, and let the supervisor stop the server.
            if worker_index == 0:
                sys.stderr.write(f"tritium serve: error: {exc}\n")
            return WORKER_STARTUP_FAILED
        freeze_long_lived()
        if worker_index == 0:  # the model table came from the executor, before any frontend started
            _log.info("server is ready (%d model(s) loaded)", _ready_models(service))
        await stop.wait()
    finally:
        await _drain(options, service, running)
        await local.stop(SHUTDOWN_MARGIN_SECS)
    return 0


def _ready_models(service: RemoteService) -> int:
    """How many models have a ready version (the count of the single-process ready line)."""
    try:
        index = service.repository_index()
    except TritiumError:
        return 0
    return len({entry["name"] for entry in index if entry.get("state") == "READY"})


async def _drain(options: ServerOptions, service: RemoteService, running: list[Any]) -> None:
    """The single-process drain, in one worker: refuse new requests (503) while those in flight finish (the
    executor answers the ones past the exit timeout with an error), then stop the frontends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.exit_timeout_secs + SHUTDOWN_MARGIN_SECS
    service.begin_shutdown()
    if service.in_flight and not await service.wait_idle(max(deadline - loop.time(), 0.0)):
        _log.warning("exit timeout: %d request(s) still in flight (%s)", service.in_flight, EXIT_TIMEOUT_MESSAGE)
    stops = [asyncio.ensure_future(f.stop()) for f in running]
    if stops:
        await asyncio.wait(stops, timeout=max(deadline - loop.time(), 0.0) + SHUTDOWN_MARGIN_SECS)
    await service.close()
    service.shared_memory.close()
