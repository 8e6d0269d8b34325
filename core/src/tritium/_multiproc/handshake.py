"""How a worker connects to the executor: one hello each way, arenas handed over as file descriptors.

A worker opens two connections to the executor's Unix socket: ``data`` (inference, streams, model control,
with an arena each way) and ``control`` (the service's synchronous calls, answered one at a time). The hello
of a data connection carries the worker's request arena; the executor's answer carries that worker's response
arena and what the worker's service reports without asking again (capabilities, server metadata).
"""

from __future__ import annotations

import pickle
import socket
from typing import Any

from tritium._multiproc.channel import frame

SOCKET_NAME = "executor.sock"
HELLO_TIMEOUT_S = 10.0
_MAX_HELLO = 1 << 16


def send_hello(sock: socket.socket, message: Any, fds: list[int]) -> None:
    """Send one hello frame with ``fds`` attached (SCM_RIGHTS)."""
    data = frame([message])
    if len(data) > _MAX_HELLO:
        raise ValueError("hello too large")
    socket.send_fds(sock, [data], fds)


def receive_hello(sock: socket.socket) -> tuple[Any, list[int]]:
    """One hello frame and the descriptors that came with it (blocking, bounded by the socket timeout)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_HELLO, 4)
    if len(data) < 8:
        for fd in fds:
            _close(fd)
        raise ConnectionError("the peer closed the connection during the handshake")
    length = int.from_bytes(data[:8], "little")
    body = bytearray(data[8:])
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            for fd in fds:
                _close(fd)
            raise ConnectionError("the peer closed the connection during the handshake")
        body += chunk
    messages = pickle.loads(bytes(body[:length]))
    return messages[0], list(fds)


def _close(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
