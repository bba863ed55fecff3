"""Loopback-only addresses: the one place that decides which hosts a helper may use.

Every helper server and client in socketlessons talks only to this machine. A classroom host
runs thirty kernels at once, so nothing binds a fixed port or a public interface: hosts are
literal loopback addresses and ports default to 0 (the kernel picks a free one).

``localhost`` is accepted and mapped to ``127.0.0.1`` on purpose: in containers with IPv6 turned
off, ``localhost`` can resolve to ``::1`` and then fail to bind (docker/for-linux#1374).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys

__all__ = ["IPV4_LOOPBACK", "IPV6_LOOPBACK", "address_in_use_errnos", "check_loopback_host", "check_port",
           "ephemeral_port_range", "family_of"]

IPV4_LOOPBACK = "127.0.0.1"
IPV6_LOOPBACK = "::1"

Address = tuple[str, int]


def check_loopback_host(host: str) -> str:
    """Return ``host`` as a literal loopback address, or raise with what to use instead.

    Raises:
        TypeError: host is not a str.
        LoopbackOnlyError: host is not a loopback address.
    """
    from .errors import LoopbackOnlyError

    if not isinstance(host, str):
        raise TypeError(f"host must be a str such as '127.0.0.1' or '::1', not {type(host).__name__}")
    if host.lower() == "localhost":
        return IPV4_LOOPBACK
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise LoopbackOnlyError(
            f"host {host!r} is not a literal loopback address: socketlessons only uses this "
            f"machine. Use {IPV4_LOOPBACK!r} (IPv4) or {IPV6_LOOPBACK!r} (IPv6)."
        ) from None
    if not ip.is_loopback:
        raise LoopbackOnlyError(
            f"host {host!r} is not a loopback address, so other machines could reach it. "
            f"socketlessons only listens on and talks to this machine: use {IPV4_LOOPBACK!r} "
            f"or {IPV6_LOOPBACK!r}."
        )
    return str(ip)


def check_port(port: int) -> int:
    """Return ``port`` if it is a valid TCP/UDP port number (0 asks the OS for a free one)."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int (0 lets the OS choose a free port), not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}; use 0 to let the OS choose a free one")
    return port


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for a literal address."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ephemeral_port_range() -> tuple[int, int, str]:
    """``(low, high, where this came from)``: the range ``bind(port 0)`` picks ports from."""
    path = "/proc/sys/net/ipv4/ip_local_port_range"
    if sys.platform.startswith("linux"):
        try:
            with open(path) as f:
                lo, hi = (int(v) for v in f.read().split())
            return lo, hi, f"read from {path}"
        except (OSError, ValueError):
            pass
        return 32768, 60999, "Linux's default (could not read /proc)"
    if sys.platform == "darwin":
        return 49152, 65535, "macOS's default (sysctl net.inet.ip.portrange.first / .last)"
    if sys.platform == "win32":
        return 49152, 65535, "Windows' default (netsh int ipv4 show dynamicport tcp)"
    return 49152, 65535, "the IANA suggestion (RFC 6335); your system may differ"


def address_in_use_errnos() -> set[int]:
    """The errno values meaning "Address already in use" here (EADDRINUSE; WSAEADDRINUSE on Windows)."""
    codes = {errno.EADDRINUSE}
    if hasattr(errno, "WSAEADDRINUSE"):
        codes.add(errno.WSAEADDRINUSE)
    return codes
