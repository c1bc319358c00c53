"""Links kept as the feed gave them (issue 22): fetched and stored as published, normalised only into keys.

Covers: flows.core.urls, flows.feeds.parse
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.core.sections import DedupSettings, FetchSettings
from flows.core.settings import Settings, WarehouseSettings
from flows.core.urls import normalise_url, published_link
from flows.feeds.parse import entry_url, parse_feed
from flows.run.collect import entry_rows
from flows.run.documents import build_doc
from flows.run.pages import download
from flows.warehouse.database import connect, migrate
from flows.warehouse.staging import Batch
from flows.warehouse.writer import load_batch

# ../shared/corpora beside the clone, as tests/test_feeds.py finds it, or NEWSFLOW_CORPORA (benchmarks/corpora.py).
CORPUS = Path(os.environ.get("NEWSFLOW_CORPORA") or Path(__file__).resolve().parents[2] / "shared" / "corpora"
              ) / "feeds"
BASE = "http://127.0.0.1/feeds/feed.xml"
REDIRECT = "https://r.example/redir/cid=7*https://example.org/2026/05/story?id=3"


def _rss(*links: str) -> bytes:
    items = "".join(f"<item><title>t{i}</title><link>{link}</link></item>" for i, link in enumerate(links))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title>{items}</channel></rss>'.encode()


@pytest.mark.parametrize(("raw", "base", "want"), [
    (REDIRECT, None, REDIRECT),  # `*` and `://` inside the path stay (the key escapes and collapses them)
    ("https://r.example/redir/x%2Ahttps%3A%2F%2Fexample.org%2Fa", None,
     "https://r.example/redir/x%2Ahttps%3A%2F%2Fexample.org%2Fa"),  # %2A stays %2A, * stays *: never swapped
    ("https://r.example/a//b/:c/", None, "https://r.example/a//b/:c/"),  # `//` and `:` in a path
    ("http://Bücher.EXAMPLE/Straße?q=ä", None, "http://Bücher.EXAMPLE/Straße?q=ä"),  # unicode host, case kept
    ("https://example.org/a?utm_source=rss&b=2#section-3", None, "https://example.org/a?utm_source=rss&b=2#section-3"),
    ("HTTPS://example.org/A", None, "HTTPS://example.org/A"),
    ("  https://example.org/a\n", None, "https://example.org/a"),  # around: stripped
    ("https://example.org/very/\n  long", None, "https://example.org/very/  long"),  # tabs, newlines in: removed
    ("/2026/story?id=1", BASE, "http://127.0.0.1/2026/story?id=1"),  # relative: resolved
    ("story.html", BASE, "http://127.0.0.1/feeds/story.html"),
    ("//cdn.example/a*b", BASE, "http://cdn.example/a*b"),
    ("mailto:desk@example.org", BASE, None),
    ("javascript:void(0)", BASE, None),
    ("http://[::1", None, None),
    ("http://example.org:99999/", None, None),
    ("", BASE, None),
])
def test_published_link_changes_only_the_documented_things(raw: str, base: str | None, want: str | None) -> None:
    assert published_link(raw, base) == want


def test_a_redirect_service_link_is_kept_and_only_its_key_is_normalised() -> None:
    parsed = parse_feed(_rss(REDIRECT.replace("&", "&amp;"), "/local?a=1&amp;b=2"), BASE, "f")
    first, second = parsed.entries
    assert first.url == REDIRECT
    assert first.key == "https://r.example/redir/cid=7%2Ahttps:/example.org/2026/05/story?id=3"
    assert entry_url(first) == first.key and first.guid == first.key  # no <guid>: the key stands in, as before
    assert second.url == "http://127.0.0.1/local?a=1&b=2"  # entities resolved, then as published
    rows = entry_rows(list(parsed.entries), "run-1")
    assert [(r["url"], r["link"]) for r in rows] == [(first.key, first.url), (second.key, second.url)]


def test_two_spellings_of_one_link_are_one_entry() -> None:
    parsed = parse_feed(_rss("https://Example.org/a?utm_source=x#top", "https://example.org/a"), BASE, "f")
    assert [e.url for e in parsed.entries] == ["https://Example.org/a?utm_source=x#top"]


_PATH_CHARS = st.text(st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@/%2AF"), max_size=40)


@st.composite
def links(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    host = draw(st.sampled_from(["example.org", "EXAMPLE.org", "bücher.example", "127.0.0.1:8080", "[::1]"]))
    query = draw(st.sampled_from(["", "?a=1&b=*", "?utm_source=x&id=2", "?url=https://x.org/y"]))
    frag = draw(st.sampled_from(["", "#", "#frag", "#a*b"]))
    return f"{scheme}://{host}/{draw(_PATH_CHARS)}{query}{frag}"


@settings(max_examples=300, deadline=None)
@given(link=links(), pad=st.sampled_from(["", " ", "\n", "\t ", "\r\n  "]))
def test_an_absolute_link_is_never_altered_beyond_the_documented_rules(link: str, pad: str) -> None:
    assert published_link(link) == link
    assert published_link(pad + link + pad, BASE) == link  # only what surrounds it goes
    assert published_link(link, BASE) == link  # an absolute link is not joined with the base


@settings(max_examples=300, deadline=None)
@given(link=st.one_of(links(), st.text(max_size=60)), base=st.sampled_from([None, BASE, "https://news.test/a/b"]))
def test_the_key_and_the_published_link_are_idempotent(link: str, base: str | None) -> None:
    key = normalise_url(link, base)
    if key is not None:
        assert normalise_url(key) == key
    published = published_link(link, base)
    if published is not None:
        assert published_link(published) == published
        assert published.lower().startswith(("http://", "https://"))
        key = normalise_url(published)
        assert key is None or normalise_url(key) == key


class _Recorder(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)  # the request target exactly as it came over the wire
        text = " ".join(f"Sentence {i} of the story about the harbour wall and the winter storms." for i in range(40))
        body = f"<html><head><title>Story</title></head><body><article><p>{text}</p></article></body></html>"
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.paths = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_published_link_is_what_is_fetched_and_stored(server: str, tmp_path: Path) -> None:
    published = f"{server}/redir/cid=7*https://example.org/a//b:c?u=https://x.org/%2A&v=*#frag"
    parsed = parse_feed(_rss(published.replace("&", "&amp;")), f"{server}/feed.xml", "f")
    [entry] = parsed.entries
    assert entry.url == published
    fs = FetchSettings(allowed_networks=("127.0.0.1/32",), respect_robots=False, min_host_delay=0)
    settings = Settings(fetch=fs, warehouse=WarehouseSettings(path=tmp_path / "w.duckdb", keep_raw_html=False))
    [(_, result)] = list(download(settings, [entry]))
    assert result is not None and result.ok
    assert _Recorder.paths == ["/redir/cid=7*https://example.org/a//b:c?u=https://x.org/%2A&v=*"]  # no fragment sent
    doc, page_row = build_doc(entry, result, settings)
    assert doc is not None and doc.link == published and doc.url == entry.key == page_row["url"]
    batch = Batch("b1", "run-1")
    batch.add("entries", *entry_rows([entry], "run-1"))
    batch.add("docs", doc)
    with connect(settings.warehouse) as conn:
        migrate(conn)
        load_batch(conn, batch, DedupSettings())
        assert conn.execute("select url, link from articles").fetchall() == [(entry.key, published)]
        assert conn.execute("select url, link from entries").fetchall() == [(entry.key, published)]


_C0_SPACE = "".join(map(chr, range(0x21)))


def _expected(entry: dict, base: str) -> tuple[str | None, str]:
    """The link the documented rules make of feedparser's entry, and the rule that applied (docs/fetching.md)."""
    guid = entry.get("id")
    permalink = guid.strip() if isinstance(guid, str) and guid.strip().lower().startswith(("http://", "https://")) \
        else None
    candidates = [entry.get("link"), *[lk.get("href") for lk in entry.get("links", [])], permalink]
    for i, raw in enumerate(candidates):
        if not isinstance(raw, str):
            continue
        link = re.sub(r"[\t\n\r]", "", raw.strip(_C0_SPACE))
        rule = "as published" if link == raw else "whitespace removed"
        if link and not re.match(r"(?i)https?:", link):
            link, rule = urljoin(base, link), "relative resolved"
        try:
            ok = bool(urlsplit(link).hostname) and (urlsplit(link).port or 0) >= 0
        except ValueError:  # a malformed port or IPv6 bracket
            ok = False
        if link and ok and re.match(r"(?i)https?://", link) and normalise_url(link):
            return link, rule if i == 0 else f"{rule} (not the first link: {'id' if raw is permalink else 'links'})"
    return None, "no usable link"


@pytest.mark.skipif(not CORPUS.exists(), reason="shared feed corpus not present")
def test_every_corpus_link_is_feedparsers_or_differs_by_a_documented_rule() -> None:
    rules: Counter[str] = Counter()
    files = 0
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.json"):
        body = path.read_bytes()
        ours = parse_feed(body, BASE, "f")
        fp = feedparser.parse(body, response_headers={"content-location": BASE}, resolve_relative_uris=True)
        if ours.error or not fp.entries:
            continue  # not a feed feedparser parses (or one this project names as not a feed)
        files += 1
        expected = [_expected(e, BASE) for e in fp.entries]
        links = {link for link, _ in expected if link}
        for entry in ours.entries:
            assert entry.url is None or entry.url in links, (path, entry.url, sorted(links)[:5])
        assert {e.key for e in ours.entries if e.key} == {normalise_url(link) for link in links}, path
        rules.update(rule for _, rule in expected)
        rules.update("key differs from the link" for e in ours.entries if e.url and e.key != e.url)
    assert files > 1000, files  # the corpus is there and was read
    print(f"\n{files} feeds; entry links by rule: {dict(rules.most_common())}")
