"""Stage 2, pages: `download` against a real server on 127.0.0.1 (the LocalServer the demo serves with): every
entry comes back once, robots.txt is asked once per origin and a refused page is never requested, and one page's
unexpected error is that page's row.

Covers: flows.run.pages, flows.ops.localserver
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.core.settings import Settings
from flows.feeds.parse import FeedEntry
from flows.ops.localserver import LocalServer
from flows.run.pages import download
from flows.web.fetch import FetchResult
from flows.web.politeness import HostGate

PAGE = "<html><head><title>{name}</title></head><body><p>{name}: see {{{{BASE}}}}/b.html</p></body></html>"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    for name in ("a", "b", "private/c"):
        (tmp_path / f"{name}.html").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.html").write_text(PAGE.format(name=name))
    (tmp_path / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with LocalServer(tmp_path) as srv:
        yield srv


def _settings(*, robots: bool = True) -> Settings:
    return Settings.model_validate({"fetch": {
        "allowed_networks": ("127.0.0.0/8",), "min_host_delay": 0, "retries": 0, "respect_robots": robots}})


def _entry(url: str | None, guid: str) -> FeedEntry:
    return FeedEntry(feed="f", guid=guid, url=url, title=guid, summary=None, published_at=None, author=None)


def _by_guid(results: Iterator[tuple[FeedEntry, FetchResult | None]]) -> dict[str, FetchResult | None]:
    out: dict[str, FetchResult | None] = {}
    for entry, result in results:
        assert entry.guid not in out, f"{entry.guid} came back twice"
        out[entry.guid] = result
    return out


def test_every_entry_comes_back_once_with_its_page_or_its_failure(server: LocalServer) -> None:
    entries = [_entry(server.url(p), p) for p in ("/a.html", "/b.html", "/gone.html", "/private/c.html",
                                                   "/logo.png")] + [_entry(None, "no-link")]
    got = _by_guid(download(_settings(), entries))
    assert set(got) == {e.guid for e in entries}
    a, b = got["/a.html"], got["/b.html"]
    assert a is not None and a.ok and b is not None and b.ok
    assert f"a: see {server.base}/b.html".encode() in (a.body or b"")  # {{BASE}} rendered to the server's origin
    assert got["/gone.html"] is not None and got["/gone.html"].error == "http_404"
    assert got["/logo.png"] is not None and got["/logo.png"].error == "wrong_content_type"
    refused = got["/private/c.html"]
    assert refused is not None and refused.error == "robots_disallowed"
    assert got["no-link"] is None
    assert "/private/c.html" not in server.hits  # refused by robots.txt, never requested
    assert server.hits["/robots.txt"] == 1


def test_without_robots_the_page_is_fetched_and_robots_txt_is_not(server: LocalServer) -> None:
    got = _by_guid(download(_settings(robots=False), [_entry(server.url("/private/c.html"), "c")]))
    assert got["c"] is not None and got["c"].ok
    assert "/robots.txt" not in server.hits


def test_a_gate_shared_across_batches_asks_robots_txt_once(server: LocalServer) -> None:
    settings = _settings()
    gate = HostGate.for_settings(settings.fetch)
    for batch in (["/a.html"], ["/b.html", "/private/c.html"]):
        list(download(settings, [_entry(server.url(p), p) for p in batch], gate=gate))
    assert server.hits["/robots.txt"] == 1
    assert server.hits["/a.html"] == server.hits["/b.html"] == 1


def test_an_unexpected_error_on_one_page_is_that_pages_failure(server: LocalServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_FAILPOINTS", "fetch_page=/b.html")
    got = _by_guid(download(_settings(), [_entry(server.url(p), p) for p in ("/a.html", "/b.html")]))
    assert got["/a.html"] is not None and got["/a.html"].ok
    failed = got["/b.html"]
    assert failed is not None and failed.error == "internal_error"
    assert "injected fault at fetch_page" in (failed.detail or "")
