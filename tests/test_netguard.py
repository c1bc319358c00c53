"""The address guard: unit tests of the check and a resolver stub, so no packet ever leaves loopback.

Covers: flows.web.netguard
"""

from __future__ import annotations

import socket

import httpcore
import pytest

from flows.core.sections import FetchSettings
from flows.web.fetch import fetch, make_client
from flows.web.netguard import BlockedAddress, check_addresses, is_public, parse_networks

REFUSED = ["127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
           "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "fe80::1", "fd00::1", "fd00:ec2::254",
           "ff02::1", "::", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe",
           "::127.0.0.1", "fe80::1%eth0"]


@pytest.mark.parametrize("ip", REFUSED)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert not is_public(ip)


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(ip: str) -> None:
    assert is_public(ip)


def _infos(*ips: str) -> list[tuple]:
    return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80)) for ip in ips]


def test_one_private_answer_refuses_the_name() -> None:
    with pytest.raises(BlockedAddress, match=r"10\.0\.0\.5"):
        check_addresses("mixed.test", _infos("93.184.216.34", "10.0.0.5"), allow_private=False)


def test_allow_private_and_allowed_networks() -> None:
    assert check_addresses("x.test", _infos("10.0.0.5"), allow_private=True) == ["10.0.0.5"]
    allowed = parse_networks(["127.0.0.1/32"])
    assert check_addresses("x.test", _infos("127.0.0.1"), False, allowed) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        check_addresses("x.test", _infos("127.0.0.2"), False, allowed)
    with pytest.raises(ValueError):
        parse_networks(["not-a-net"])


def test_empty_answer_is_a_connect_error() -> None:
    with pytest.raises(httpcore.ConnectError):
        check_addresses("x.test", [], allow_private=False)


@pytest.mark.parametrize("answer", ["169.254.169.254", "10.0.0.1", "fd00::1", "127.0.0.1"])
def test_hostname_resolving_to_refused_address_never_connects(answer: str) -> None:
    """A stub resolver maps the name to a refused address; the guard refuses before any socket is opened."""
    calls: list[str] = []

    def resolver(host: str, port: int, **_: object) -> list[tuple]:
        calls.append(host)
        return _infos(answer)

    settings = FetchSettings(connect_timeout=1, read_timeout=1, total_timeout=2)
    with make_client(settings, resolver=resolver) as client:
        result = fetch(client, "http://metadata.test/latest/meta-data/", settings, max_bytes=1000)
    assert calls == ["metadata.test"]
    assert result.error == "blocked_address" and answer in (result.detail or "")


def test_loopback_refused_without_allowance() -> None:
    """The real resolver on a loopback name: refused by default, so not even loopback is dialled."""
    settings = FetchSettings(connect_timeout=1, read_timeout=1, total_timeout=2)
    with make_client(settings) as client:
        for url in ("http://127.0.0.2:9/", "http://localhost:9/feed", "http://2130706433:9/", "http://[::1]:9/"):
            assert fetch(client, url, settings, max_bytes=1000).error == "blocked_address", url
