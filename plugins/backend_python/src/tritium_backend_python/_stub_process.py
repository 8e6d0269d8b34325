"""A running stub process, seen from the server: start it, exchange messages with it, stop it.

While the server waits for a stub's answer it also serves what the stub asks meanwhile: log lines, BLS
calls (answered on a small thread pool, so that a model's concurrent ``async_exec`` calls run concurrently)
and readiness checks. See ``_stub.py`` for the protocol.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import triton_python_backend_utils

import tritium_backend_python
from tritium_backend_python._bls import BlsBridge
from tritium_backend_python._channel import Channel, ChannelClosed, ChannelTimeout
from tritium_backend_python._ring import RingPair

_log = logging.getLogger("tritium.backend.python")

CONTINUE = object()
"""What an exchange handler returns for a message that does not end the exchange."""

LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR, "VERBOSE": logging.DEBUG}


def _trusted(path: Path) -> bool:
    """Whether ``path`` is a real folder of this user that nobody else can write to (the temporary
    directory is shared: another user could plant a folder under a predictable name)."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def stub_pythonpath() -> str:
    """A folder holding only ``triton_python_backend_utils`` and this package (as links), for the stub's
    ``PYTHONPATH``: another environment's interpreter then finds them without seeing the server's other
    packages. Made once per installation and user in the temporary directory, and used only when it is
    this user's and its links point where they should (else a private folder is made)."""
    module = Path(triton_python_backend_utils.__file__).resolve()
    package = Path(tritium_backend_python.__file__).resolve().parent
    links = {"triton_python_backend_utils.py": module, "tritium_backend_python": package}
    key = hashlib.sha256(f"{module}|{package}".encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"tritium-python-stub-{os.getuid()}-{key}"

    def valid(candidate: Path) -> bool:
        if not _trusted(candidate):
            return False
        try:
            return all(os.readlink(candidate / name) == str(target) for name, target in links.items())
        except OSError:
            return False

    if valid(folder):
        return str(folder)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + "-"))  # mode 0700
    for name, target in links.items():
        (staging / name).symlink_to(target)
    try:
        staging.rename(folder)
    except OSError:  # made meanwhile by another process (or planted): use it only if valid
        if valid(folder):
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
            return str(folder)
        return str(staging)
    return str(folder)


@attrs.define(frozen=True, slots=True)
class Polling:
    """How long each side looks for the other's next message before it sleeps (see ``_ring.py`` and
    ``_settings.py``): ``server_s`` on the event loop while executions are in flight (from the last answer),
    ``stub_s`` in the stub."""

    server_s: float = 0.0
    stub_s: float = 0.0


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class StubProcess:
    """One stub process and its channel. ``label`` names it in messages (``"model 'm' instance m_0"``)."""

    def __init__(
        self, *, interpreter: Path, label: str, bridge: BlsBridge, inline_limit: int = 4096,
        polling: Polling = Polling(),
    ) -> None:
        self.label = label
        self._bridge = bridge
        self.polling = polling
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        rings = RingPair.create()
        ring_fd = rings.fd
        assert ring_fd is not None
        env = dict(os.environ)
        path = stub_pythonpath()
        env["PYTHONPATH"] = path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.process = subprocess.Popen(
                [str(interpreter), "-m", "tritium_backend_python._stub", str(child.fileno()), str(os.getpid()),
                 str(ring_fd), f"{polling.stub_s:g}"],
                pass_fds=(child.fileno(), ring_fd),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # the terminal's Ctrl-C goes to the server, which stops stubs in order
            )
        except OSError:
            parent.close()
            rings.close()
            raise
        finally:
            child.close()
            rings.close_fd()
        self.channel = Channel(parent, rings, copy_received=True, inline_limit=inline_limit)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.before_close: Callable[[], None] | None = None
        """Called (from any thread) before the channel closes: an event loop watching its socket lets go of
        it first (a closed descriptor would silently leave the loop's poller, and its number be reused)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_description(self) -> str:
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        return describe_exit(code)

    # ---------------------------------------------------------------------------------- exchanges
    def exchange(self, message: Any, timeout: float | None, handle: Callable[[Any], Any] | None = None) -> Any:
        """Send ``message`` and serve the stub until ``handle`` (default: the first reply that is not a
        request of the stub's own) returns something other than :data:`CONTINUE`; returns that.

        Raises :class:`ChannelClosed` when the stub exits and :class:`ChannelTimeout` after ``timeout``
        seconds without the answer (None: no limit).
        """
        channel = self.channel
        channel.send(message)
        receive = channel.receive
        while True:
            reply = receive(timeout=timeout)
            kind = reply[0]
            if kind == "log":
                _log.log(LEVELS.get(reply[1], logging.INFO), "%s: %s", self.label, reply[2])
                continue
            if kind == "bls" or kind == "ready":
                self.serve_call(reply)
                continue
            if handle is None:
                return reply
            outcome = handle(reply)
            if outcome is not CONTINUE:
                return outcome

    def serve_call(self, message: Any) -> None:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tritium-python-bls")
            pool = self._pool
        pool.submit(self._answer, message)

    def _answer(self, message: Any) -> None:
        bridge = self._bridge
        call_id = message[1]
        try:
            if message[0] == "ready":
                ready = bridge.ready(message[2], message[3])
                error = None if ready else ("UNAVAILABLE", f"model '{message[2]}' is not ready")
                self.channel.send(("bls_response", call_id, ((), {}, error), True))
            elif message[3]:
                for response, final in bridge.stream(message[2]):
                    self.channel.send(("bls_response", call_id, response, final))
            else:
                self.channel.send(("bls_response", call_id, bridge.infer(message[2]), True))
        except ChannelClosed:
            pass
        except Exception:
            _log.exception("%s: answering a BLS call failed", self.label)
            try:
                self.channel.send(("bls_response", call_id, ((), {}, ("INTERNAL", "BLS call failed")), True))
            except ChannelClosed:
                pass

    # ---------------------------------------------------------------------------------- stopping
    def kill(self) -> None:
        if self.alive():
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _log.error("%s: stub process %d did not exit after SIGKILL", self.label, self.process.pid)
        self._shutdown()

    def stop(self, timeout: float) -> str | None:
        """Finalize the model and end the process (killed after ``timeout``); returns finalize's error."""
        error: str | None = None
        try:
            if self.alive():
                reply = self.exchange(("finalize",), timeout)
                error = reply[1] if reply[0] == "ok" else str(reply[1])
                self.process.wait(timeout=timeout)
        except ChannelTimeout:
            error = f"finalize did not finish within {timeout:g} s; the stub process was killed"
        except (ChannelClosed, subprocess.TimeoutExpired):
            pass
        self.kill()
        return error

    def _shutdown(self) -> None:
        release, self.before_close = self.before_close, None
        if release is not None:
            release()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self.channel.close()
