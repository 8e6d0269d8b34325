"""The listening ports of a multi-process server, reserved once, by the supervisor, for all its workers.

Workers bind their frontends' ports with ``SO_REUSEPORT``. On their own they would join whatever already holds
a port with that option (another Tritium started with ``--workers``, which then silently takes part of the
traffic), and each would pick a port of its own for port 0. So, before the executor and the workers start,
the supervisor binds each such port once as a single process would (without ``SO_REUSEPORT``): refused when
anything holds the port, and port 0 becomes one concrete port. It then turns that socket into a bound,
never-listening member of a ``SO_REUSEPORT`` group (``SO_REUSEADDR`` off, so a plain bind is refused too) and
keeps it for its lifetime: the workers join it, and while they restart nobody else can take the port.
A frontend whose ``reuse_port`` option the user set explicitly asked to share its port: it is not probed.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import attrs

from tritium._base.options import ServerOptions
from tritium._runtime.server import StartupError, component_options


@attrs.define(slots=True)
class PortReservation:
    """The port of frontend ``frontend``, held by ``holder``."""

    frontend: str
    port: int
    holder: socket.socket


def reserve_ports(frontends: Mapping[str, Any], options: ServerOptions) -> list[PortReservation]:
    """Reserve the port of every enabled frontend that shares its port between workers and names its address
    and port options. Raises :class:`StartupError` (in a single process's words) when a port is taken."""
    reservations: list[PortReservation] = []
    try:
        for name, spec in frontends.items():
            given = options.components.get(f"frontend.{name}", {})
            reuse, address_option, port_option = (
                getattr(spec, "reuse_port_option", None),
                getattr(spec, "address_option", None),
                getattr(spec, "port_option", None),
            )
            if not given.get("enabled", False) or not (reuse and address_option and port_option):
                continue
            resolved = component_options(spec.options, given)
            address, port = str(resolved[address_option]), int(resolved[port_option])
            holder = _reserve(address, port, shared=bool(resolved.get(reuse)))
            reservations.append(PortReservation(name, int(holder.getsockname()[1]), holder))
    except BaseException:
        release_ports(reservations)
        raise
    return reservations


def release_ports(reservations: list[PortReservation]) -> None:
    for reservation in reservations:
        reservation.holder.close()


def _reserve(address: str, port: int, *, shared: bool) -> socket.socket:
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise StartupError(f"Socket '{address}:{port}' cannot be bound: {exc}") from None
    holder = socket.socket(family, kind, proto)
    try:
        if shared:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        else:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no owner
        try:
            holder.bind(sockaddr)
        except OSError as exc:
            raise StartupError(f"Socket '{address}:{port}' already in use ({exc})") from None
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except BaseException:
        holder.close()
        raise
    return holder
