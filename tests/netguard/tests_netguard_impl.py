"""Refuse every socket connection that is not to loopback or a local (AF_UNIX) socket."""

from __future__ import annotations

import ipaddress
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlocked(RuntimeError):
    """A test (or the code under test) tried to open a network connection."""


def _allowed(sock: socket.socket, address: object) -> bool:
    if sock.family == socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: not allowed


def _guarded(real):
    def connect(self: socket.socket, address: object):
        if not _allowed(self, address):
            raise NetworkBlocked(f"network access blocked in tests: connect to {address!r}")
        return real(self, address)

    return connect


def install() -> None:
    """Patch socket connects for the rest of the process."""
    socket.socket.connect = _guarded(_real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded(_real_connect_ex)  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore the real connects."""
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
