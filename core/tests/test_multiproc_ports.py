"""The supervisor's port reservations: a taken port is refused, port 0 becomes one port, workers join it and
nobody else can bind it while the reservation lives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritium import FrontendSpec, OptionSpec, ServerOptions
from tritium._multiproc.ports import release_ports, reserve_ports
from tritium._runtime.server import StartupError

OPTIONS = (
    OptionSpec("port", int, 8000, "port"),
    OptionSpec("address", str, "127.0.0.1", "address"),
    OptionSpec("reuse_port", bool, False, "share the port"),
)


def _spec(name: str = "web", *, listen_options: bool = True) -> FrontendSpec:
    return FrontendSpec(
        name=name,
        factory=lambda service, options: None,  # type: ignore[arg-type,return-value]
        options=OPTIONS,
        reuse_port_option="reuse_port",
        address_option="address" if listen_options else None,
        port_option="port" if listen_options else None,
    )


def _options(port: int, *, enabled: bool = True, reuse_port: bool = False, name: str = "web") -> ServerOptions:
    return ServerOptions(
        components={f"frontend.{name}": {"enabled": enabled, "port": port, "reuse_port": reuse_port}}
    )


def _worker_socket(port: int) -> socket.socket:
    """What a worker's frontend does: SO_REUSEADDR and SO_REUSEPORT, bind, listen."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _plain_bind(port: int) -> OSError | None:
    """What a single-process server (or any other program) does; the error, or None when it got the port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


@pytest.fixture
def listener() -> Iterator[int]:
    """A port some other program listens on (no SO_REUSEPORT)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_taken_port_is_refused_in_a_single_process_words(listener: int) -> None:
    with pytest.raises(StartupError, match=rf"Socket '127\.0\.0\.1:{listener}' already in use"):
        reserve_ports({"web": _spec()}, _options(listener))


def test_a_port_shared_by_another_server_s_workers_is_refused() -> None:
    """Another multi-process server's workers (a SO_REUSEPORT group of the same user) hold the port: joining
    them would silently split the traffic."""
    other = _worker_socket(0)
    try:
        with pytest.raises(StartupError, match="already in use"):
            reserve_ports({"web": _spec()}, _options(other.getsockname()[1]))
    finally:
        other.close()


def test_port_zero_becomes_one_port_that_workers_join_and_nobody_else_binds() -> None:
    (reservation,) = reserve_ports({"web": _spec()}, _options(0))
    try:
        assert reservation.frontend == "web" and reservation.port > 0
        workers = [_worker_socket(reservation.port) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", reservation.port), timeout=5):
            pass  # a worker accepts (the reservation itself never listens)
        assert _plain_bind(reservation.port) is not None
        for worker in workers:
            worker.close()
        # Every worker gone (all restarting at once): the port is still this server's.
        assert _plain_bind(reservation.port) is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", reservation.port), timeout=5).close()
        _worker_socket(reservation.port).close()  # a restarted worker joins again
    finally:
        release_ports([reservation])
    assert _plain_bind(reservation.port) is None  # released with the server


def test_an_explicitly_shared_port_is_joined_not_probed() -> None:
    """``--reuse-http-port=true``: the user asked to share the port with other servers."""
    other = _worker_socket(0)
    port = other.getsockname()[1]
    try:
        (reservation,) = reserve_ports({"web": _spec()}, _options(port, reuse_port=True))
        assert reservation.port == port
        release_ports([reservation])
    finally:
        other.close()


def test_disabled_frontends_and_frontends_without_listen_options_reserve_nothing(listener: int) -> None:
    assert reserve_ports({"web": _spec()}, _options(listener, enabled=False)) == []
    assert reserve_ports({"web": _spec(listen_options=False)}, _options(listener)) == []


def test_a_failure_releases_what_was_reserved_before_it(listener: int) -> None:
    specs = {"first": _spec("first"), "second": _spec("second")}
    options = ServerOptions(
        components={
            "frontend.first": {"enabled": True, "port": 0},
            "frontend.second": {"enabled": True, "port": listener},
        }
    )
    before = _open_sockets()
    with pytest.raises(StartupError):
        reserve_ports(specs, options)
    assert _open_sockets() == before  # the first reservation was closed


def _open_sockets() -> int:
    return sum(1 for fd in Path("/proc/self/fd").iterdir() if _readlink(fd).startswith("socket:"))


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


def test_an_unresolvable_address_is_a_startup_error() -> None:
    options = ServerOptions(components={"frontend.web": {"enabled": True, "port": 0, "address": "no such host."}})
    with pytest.raises(StartupError, match="cannot be bound"):
        reserve_ports({"web": _spec()}, options)
