"""Which network addresses newsflow may connect to, checked on the address actually dialled."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpcore

Resolver = Callable[..., list[tuple[Any, ...]]]


class BlockedAddress(httpcore.ConnectError):
    """The target resolved to an address newsflow refuses (private, loopback, link-local, ...)."""


def is_public(ip: str) -> bool:
    """True for globally routable unicast addresses; False for private, loopback, link-local, multicast, reserved."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return bool(addr.is_global) and not (
        addr.is_multicast or addr.is_reserved or addr.is_loopback or addr.is_link_local
        or addr.is_private or addr.is_unspecified
    )


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def check_addresses(host: str, infos: list[tuple[Any, ...]], allow_private: bool) -> list[str]:
    """The resolved addresses to try, or BlockedAddress when any of them is refused.

    All must pass: a name that resolves to one public and one private address is refused, since which of them a
    later connection picks is up to the resolver.
    """
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    if not ips:
        raise httpcore.ConnectError(f"{host}: name resolved to no address")
    if not allow_private:
        refused = [ip for ip in ips if not is_public(ip)]
        if refused:
            raise BlockedAddress(
                f"{host} resolves to {refused[0]}, a non-public address "
                "(set [fetch] allow_private_networks = true to allow it)"
            )
    return ips


class GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend that resolves the host itself, checks every address, then dials that address.

    Dialling the checked address (rather than the name) closes the window in which a second DNS answer could
    point somewhere else. TLS still verifies against the host name, which httpcore passes separately.
    """

    def __init__(self, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"{host}: cannot resolve ({exc.strerror})") from exc
        last: Exception | None = None
        for ip in check_addresses(host, infos, self.allow_private):
            try:
                return super().connect_tcp(ip, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last
