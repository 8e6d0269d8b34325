"""Entry point of the executor and worker processes.

Command line: ``python -m tritium._multiproc.child ROLE INDEX RUN_DIR SUPERVISOR_PID``.

Started only by the supervisor, never by hand: the options come from ``RUN_DIR/options.pickle``, written by
the supervisor of the same server (a private directory of the server's user).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import sys
from pathlib import Path

OPTIONS_NAME = "options.pickle"
EXECUTOR_STARTUP_FAILED = 3
"""The executor's exit status when its models could not be loaded at startup (reported already)."""


def _die_with_parent(parent: int) -> None:
    """Get SIGTERM when the supervisor dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``): no orphan keeps
    a port or a model."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before the call above
        sys.exit(1)


def main(argv: list[str]) -> int:
    role, index_text, run_dir_text, parent_text = argv
    _die_with_parent(int(parent_text))
    run_dir = Path(run_dir_text)
    with open(run_dir / OPTIONS_NAME, "rb") as file:
        options, workers, ports = pickle.load(file)

    from tritium._base.errors import ConfigError, PluginError, TritiumError
    from tritium._plugins.host import PluginHost, plugin_reference
    from tritium._runtime.log_config import configure_logging
    from tritium._runtime.server import StartupError

    configure_logging(options, stream=sys.stderr)
    host = PluginHost(
        disabled=options.disabled_plugins, extra_plugins=[plugin_reference(m) for m in options.extra_plugins]
    )
    host.load()
    if role == "executor":
        from tritium._multiproc.roles import run_executor

        try:
            return asyncio.run(run_executor(options, host, run_dir))
        except (ConfigError, PluginError, TritiumError, StartupError) as exc:
            # What a single-process server says about a startup failure, in the same words (the supervisor
            # then exits with status 1 without adding its own).
            if options.log_file:
                logging.getLogger("tritium.server").error("%s", exc)
            sys.stderr.write(f"tritium serve: error: {exc}\n")
            return EXECUTOR_STARTUP_FAILED
    from tritium._multiproc.roles import run_worker

    return asyncio.run(run_worker(options, host, run_dir, int(index_text), workers, ports))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
