"""Which network addresses newsflow may connect to, checked on the address actually dialled, and a per-request
deadline enforced on every socket read and write.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore

Resolver = Callable[..., list[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPAT = ipaddress.ip_network("::/96")
# The monotonic time by which the current request must be done; set by `deadline()`, read by the streams.
_DEADLINE: ContextVar[float | None] = ContextVar("newsflow_deadline", default=None)


class BlockedAddress(httpcore.ConnectError):
    """The target resolved to an address newsflow refuses (private, loopback, link-local, ...)."""


class DeadlineExceeded(httpcore.ReadTimeout):
    """The whole request took longer than its total time limit."""


def _address(ip: str) -> IPAddress:
    """The address, with an IPv4 address embedded in IPv6 (mapped, 6to4, NAT64, compatible) unwrapped."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped:
            return addr.ipv4_mapped
        if addr.sixtofour:
            return addr.sixtofour
        if addr in _NAT64 or (addr in _V4_COMPAT and int(addr) > 1):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def is_public(ip: str) -> bool:
    """True for globally routable unicast addresses; False for private, loopback, link-local, multicast, reserved."""
    addr = _address(ip)
    return bool(addr.is_global) and not (
        addr.is_multicast or addr.is_reserved or addr.is_loopback or addr.is_link_local
        or addr.is_private or addr.is_unspecified
    )


def is_loopback(ip: str) -> bool:
    return _address(ip).is_loopback


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR ranges (or single addresses) from config; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def check_addresses(host: str, infos: list[tuple[Any, ...]], allow_private: bool,
                    allowed: tuple[Network, ...] = ()) -> list[str]:
    """The resolved addresses to try, or BlockedAddress when any of them is refused.

    All must pass: a name that resolves to one public and one private address is refused, since which of them a
    later connection picks is up to the resolver. `allowed` lists exceptions (a local test server's address).
    """
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    if not ips:
        raise httpcore.ConnectError(f"{host}: name resolved to no address")
    if not allow_private:
        refused = [ip for ip in ips if not is_public(ip) and not any(_address(ip) in net for net in allowed)]
        if refused:
            what = f"{host} is" if host.strip("[]") == refused[0] else f"{host} resolves to {refused[0]},"
            raise BlockedAddress(
                f"{what} a non-public address "
                "(set [fetch] allow_private_networks = true to allow it)"
            )
    return ips


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Every socket operation of this thread's requests inside the block must end within `seconds` in total."""
    until = time.monotonic() + seconds
    token = _DEADLINE.set(until)
    try:
        yield until
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None) -> float | None:
    """The operation's own timeout, shortened to what is left before the deadline."""
    until = _DEADLINE.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("total time limit reached")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write also respects the request's total deadline.

    A read timeout alone lets a server that sends one byte every few seconds hold a connection forever, even
    while it is still sending headers; bounding each read by the time left cuts it off wherever it is.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, _bounded(timeout))
        except httpcore.ReadTimeout:
            until = _DEADLINE.get()
            if until is not None and time.monotonic() >= until:
                raise DeadlineExceeded("total time limit reached") from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend that resolves the host itself, checks every address, then dials that address.

    Dialling the checked address (rather than the name) closes the window in which a second DNS answer could
    point somewhere else. TLS still verifies against the host name, which httpcore passes separately.
    """

    def __init__(self, *, allow_private: bool, allowed: tuple[Network, ...] = (),
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self.allow_private = allow_private
        self.allowed = allowed
        self.resolver = resolver

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: cannot resolve ({getattr(exc, 'strerror', None) or exc})") from exc
        last: Exception | None = None
        for ip in check_addresses(host, infos, self.allow_private, self.allowed):
            try:
                stream = super().connect_tcp(ip, port, timeout=_bounded(timeout), local_address=local_address,
                                             socket_options=socket_options)
                return DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are never used for fetching")
