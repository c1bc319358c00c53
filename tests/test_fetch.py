"""fetch() against the fault-injection server on 127.0.0.1, plus decompression and headers.

Covers: flows.web.fetch, flows.core.urls
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from faultserver import FAULTS, FaultServer

from flows.core.sections import FetchSettings
from flows.core.urls import redact, scrub
from flows.web.fetch import FetchResult, Inflater, fetch, is_feed_type, is_page_type, make_client, retry_after

SETTINGS = FetchSettings(connect_timeout=1, read_timeout=1, total_timeout=1.5, max_feed_bytes=1_000_000,
                         allowed_networks=("127.0.0.1/32",))


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(bomb_bytes=20_000_000, huge_bytes=5_000_000) as srv:
        yield srv


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with make_client(SETTINGS) as c:
        yield c


def _get(client: httpx.Client, server: FaultServer, path: str, **kw: object) -> FetchResult:
    return fetch(client, server.url(path), SETTINGS, max_bytes=SETTINGS.max_feed_bytes,
                 accept_type=is_feed_type, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [p for p, code in FAULTS.items() if code != "not_a_feed" and "drip" not in p])
def test_each_fault_gives_its_code(client: httpx.Client, server: FaultServer, path: str) -> None:
    result = _get(client, server, path)
    assert result.error == FAULTS[path] and result.body is None and result.detail


def test_dripping_server_is_cut_by_the_total_limit(client: httpx.Client, server: FaultServer) -> None:
    for path in ("/feeds/drip", "/feeds/drip-headers"):
        result = _get(client, server, path)
        assert result.error == "timeout" and "total limit" in (result.detail or "")
        assert result.elapsed_ms < (SETTINGS.total_timeout + 1.0) * 1000


def test_gzip_bomb_is_cut_after_decompression(client: httpx.Client, server: FaultServer) -> None:
    result = _get(client, server, "/feeds/bomb")
    assert result.error == "too_large" and "after decompression" in (result.detail or "")


def test_conditional_get(client: httpx.Client, server: FaultServer) -> None:
    first = _get(client, server, "/feeds/etag.xml")
    assert first.ok and first.headers["etag"] == '"v1"'
    again = _get(client, server, "/feeds/etag.xml", etag=first.headers["etag"],
                 last_modified=first.headers["last-modified"])
    assert again.not_modified and again.body is None and again.error is None


def test_permanent_and_temporary_redirects(client: httpx.Client, server: FaultServer) -> None:
    moved = _get(client, server, "/feeds/moved")
    assert moved.ok and [c for c, _ in moved.redirects] == [301, 308]
    assert moved.permanent_url == server.url("/feeds/good-c.xml")
    temp = _get(client, server, "/feeds/temp")
    assert temp.ok and temp.permanent_url is None


def test_redirect_to_refused_address_is_refused(server: FaultServer) -> None:
    """With loopback allowed only for 127.0.0.1, the hop to 127.0.0.2 is refused before connecting."""
    with make_client(SETTINGS) as c:
        result = fetch(c, server.url("/feeds/to-refused"), SETTINGS, max_bytes=1000)
    assert result.error == "blocked_address" and "127.0.0.2" in (result.detail or "")
    assert [code for code, _ in result.redirects] == [302]


def test_page_type_check_refuses_images(client: httpx.Client, server: FaultServer) -> None:
    result = fetch(client, server.url("/articles/photo.jpg"), SETTINGS, max_bytes=10_000, accept_type=is_page_type)
    assert result.error == "wrong_content_type" and "image/jpeg" in (result.detail or "")
    assert is_feed_type("text/html") and not is_feed_type("image/png") and not is_page_type("application/pdf")


def test_credentials_never_reach_the_detail(server: FaultServer) -> None:
    with make_client(SETTINGS) as c:
        url = server.url("/feeds/to-refused").replace("http://", "http://alice:s3cret@")
        result = fetch(c, url, SETTINGS, max_bytes=1000)
    assert "s3cret" not in (result.detail or "") and "s3cret" not in redact(result.url)
    assert scrub("failed for https://bob:pw@x.test/a and http://u@y.test") == \
        "failed for https://***@x.test/a and http://***@y.test"


def test_bad_urls_are_recorded(client: httpx.Client) -> None:
    assert fetch(client, "ftp://x.test/feed", SETTINGS, max_bytes=10).error == "bad_scheme"
    assert fetch(client, "file:///etc/passwd", SETTINGS, max_bytes=10).error == "bad_scheme"
    assert fetch(client, "http://[::1/feed", SETTINGS, max_bytes=10).error == "bad_url"
    # httpx refuses a URL over 64 KiB with an exception of its own (not a ValueError): that page's internal_error,
    # with a traceback and the whole URL in the log, before.
    long = fetch(client, "http://127.0.0.1:9/" + "a" * 200_000, SETTINGS, max_bytes=10)
    assert (long.error, long.detail) == ("bad_url", "unusable URL: InvalidURL: URL too long")


def test_inflater_bounds_every_piece() -> None:
    data = gzip.compress(b"\0" * 3_000_000) + gzip.compress(b"tail")  # two members
    inflater = Inflater("gzip")
    pieces = list(inflater.feed(data))
    assert max(len(p) for p in pieces) <= 64 * 1024
    assert b"".join(pieces) + inflater.flush() == b"\0" * 3_000_000 + b"tail"
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = raw.compress(b"hello") + raw.flush()
    assert b"".join(Inflater("deflate").feed(raw_deflate)) == b"hello"  # raw deflate, as some servers send


def test_retry_after() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert retry_after("120") == 120
    assert retry_after("Mon, 02 Mar 2026 10:30:00 GMT", now) == 1800
    assert retry_after("Mon, 02 Mar 2026 09:00:00 GMT", now) == 0
    assert retry_after("soon") is None and retry_after(None) is None


