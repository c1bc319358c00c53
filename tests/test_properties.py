"""Properties of the feed parser and the document builder on generated and mutated input (hypothesis).

parse_feed never raises and never falls back to its internal-error net; the same bytes give the same entries;
every entry URL is absolute http(s) or None; entity and DOCTYPE tricks expand nothing; build_doc survives any HTML.

Covers: flows.feeds.parse, flows.run.documents, flows.core.urls
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from conftest import write_config
from corpus import feed_files, missing
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flows.core.settings import Settings, load_settings
from flows.core.stats import RunStats
from flows.feeds.parse import INTERNAL_ERROR, FeedEntry, ParsedFeed, parse_feed, to_utf8
from flows.ops.localserver import LocalServer
from flows.run.collect import fetch_feeds
from flows.run.documents import build_doc
from flows.warehouse import rawcodec
from flows.web.fetch import FetchResult

BASE = "http://news.test/feed/"
FILES = feed_files()
needs_corpus = pytest.mark.skipif(not FILES, reason=missing("feeds/"))
# Modest by default (the whole file runs in about 25 s on a loaded machine); raise it for a longer bug hunt.
EXAMPLES = int(os.environ.get("NEWSFLOW_PROPERTY_EXAMPLES", "100"))
FAST = settings(deadline=None, max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])

JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "http://news.test/",
    "feed_url": "http://news.test/feed.json", "authors": [{"name": "Desk"}],
    "items": [
        {"id": "1", "url": "http://news.test/a", "external_url": "http://other.test/a", "title": "One",
         "summary": "S", "content_html": "<p>Body</p>", "content_text": "Body", "tags": ["x"],
         "date_published": "2026-03-02T10:00:00+01:00", "date_modified": "2026-03-02T11:00:00Z",
         "authors": [{"name": "Ana", "url": "http://news.test/ana"}], "author": {"name": "Ana"}},
        {"id": "2", "url": "/b", "title": "Two", "content_text": "Second",
         "date_published": "Tue, 10 Jun 2003 04:00:00 GMT"},
    ],
}


def _parse(body: bytes, url: str = BASE) -> ParsedFeed:
    """parse_feed, asserting it neither raised nor needed its safety net (which would hide a bug)."""
    parsed = parse_feed(body, url, "f")
    assert not (parsed.error or "").startswith(INTERNAL_ERROR), parsed.error
    assert parsed.error is None or parsed.error.startswith("not a feed: "), parsed.error
    assert parsed.error is None or not parsed.entries
    return parsed


def _absolute_or_none(entries: tuple[FeedEntry, ...]) -> None:
    for e in entries:
        assert e.guid, e
        if e.url is not None:
            parts = urlsplit(e.url)
            assert parts.scheme in ("http", "https") and parts.hostname, e.url


# ---------------------------------------------------------------- the known bugs, as plain examples

def test_json_feed_rfc822_date_is_read() -> None:
    """feedparser 6.0.14 has no top-level _parse_date; an RFC 822 date used to raise AttributeError."""
    parsed = _parse(json.dumps(JSON_FEED).encode())
    assert parsed.entries[1].published_at == datetime(2003, 6, 10, 4, 0, tzinfo=UTC)
    assert parsed.entries[1].url == "http://news.test/b"


@pytest.mark.parametrize("key", ["id", "url", "external_url", "title", "summary", "content_html", "content_text",
                                 "date_published", "authors", "author"])
@pytest.mark.parametrize("value", [7, 1.5, True, None, [1, "x"], {"name": 3}, "  "])
def test_json_feed_wrong_types_never_raise(key: str, value: Any) -> None:
    doc = json.loads(json.dumps(JSON_FEED))
    doc["items"][0][key] = value
    del doc["items"][0]["date_published" if key != "date_published" else "date_modified"]
    parsed = _parse(json.dumps(doc).encode())
    assert len(parsed.entries) == 2
    one = parsed.entries[0]
    for field in (one.title, one.summary, one.author, one.guid, one.url):
        assert field is None or isinstance(field, str)
    if key == "url" and not isinstance(value, str):  # a number is not a link, and not a relative path either
        assert one.url == "http://other.test/a"


def test_json_feed_with_numbers_where_strings_belong() -> None:
    doc = {"version": "https://jsonfeed.org/version/1", "title": 2026, "home_page_url": 5,
           "items": [{"id": 17, "url": 3, "title": 42, "summary": 0.5, "authors": [{"name": 9}]}]}
    parsed = _parse(json.dumps(doc).encode())
    (one,) = parsed.entries
    assert (parsed.title, one.guid, one.url, one.title, one.summary, one.author) == \
        ("2026", "17", None, "42", "0.5", "9")


def test_json_feed_in_utf16_and_lone_surrogates() -> None:
    text = json.dumps(JSON_FEED, ensure_ascii=False).replace('"One"', '"One \\ud800 half"')
    parsed = _parse(text.encode("utf-16"))
    assert parsed.entries[0].title == "One \ufffd half"
    assert parsed.entries[0].title.encode()  # encodable: it can be hashed and stored


def test_deeply_nested_json_is_named() -> None:
    assert _parse(b"[" * 100_000).error
    assert _parse(b'{"version": "https://jsonfeed.org/version/1", "items": ' + b"[" * 100_000).error


def test_blank_guid_falls_back_to_the_link() -> None:
    body = b"<rss version='2.0'><channel><item><guid>  </guid><link>http://news.test/x</link></item></channel></rss>"
    assert _parse(body).entries[0].guid == "http://news.test/x"


def test_fetch_feeds_records_every_feed_with_an_odd_json_feed(tmp_path: Path) -> None:
    """One feed_fetches row per feed even when one serves a JSON Feed with RFC 822 dates and numbers for strings."""
    site = tmp_path / "site"
    site.mkdir()
    odd = json.loads(json.dumps(JSON_FEED))
    odd["items"][0]["title"] = 12
    (site / "odd.json").write_text(json.dumps(odd))
    (site / "good.xml").write_text("<rss version='2.0'><channel><item><link>/g</link></item></channel></rss>")
    with LocalServer(site) as server:
        config = write_config(tmp_path, "".join(
            f'[[feeds]]\nname = "{n}"\nurl = "{server.url("/" + n)}"\n' for n in ("odd.json", "good.xml")))
        s = load_settings(config, env={})
        out = fetch_feeds(s, list(s.feeds), {}, "run", RunStats())
    assert sorted((r["feed"], r["outcome"], r["entries"]) for r in out.fetch_rows) == \
        [("good.xml", "ok", 1), ("odd.json", "ok", 2)]


# ---------------------------------------------------------------- arbitrary and mutated bytes

PREFIXES = [b"", b"<?xml version='1.0'?>", b"<?xml version='1.0' encoding='utf-16'?>", b"<rss version='2.0'>",
            b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"<rdf:RDF>", b"{", b"[", b"\xef\xbb\xbf", b"\xff\xfe",
            b"\xfe\xff", b"\x00\x00\xfe\xff", b"<!DOCTYPE rss [", b"<html>", b'{"version": "https://jsonfeed.org/1"']


@FAST
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(prefix: bytes, body: bytes) -> None:
    _absolute_or_none(_parse(prefix + body).entries)


_XML_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_LINKS = st.one_of(
    st.sampled_from(["/a", "a/b?utm_source=x", "//other.test/x", "javascript:alert(1)", "mailto:x@y.z",
                     "http://", "http://[::1", "https://news.test:99999/", "ftp://news.test/f", "  http://x.test/ ",
                     "http://exa mple.test/", "http://xn--d1acpjx3f.xn--p1ai/", "http://пример.рф/путь", "#frag",
                     "http://user:pw@news.test/", "data:text/html,hi", "\\\\host\\share", "http://1.2.3.4/", ""]),
    _XML_TEXT)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


@st.composite
def rss_feeds(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(st.tuples(_XML_TEXT, _LINKS, _XML_TEXT, st.booleans()), max_size=6))
    body = "".join(
        f"<item><title>{_esc(t)}</title><link>{_esc(link)}</link><guid isPermaLink='{str(perma).lower()}'>"
        f"{_esc(link)}</guid><description>{_esc(d)}</description><pubDate>{_esc(d[:20])}</pubDate></item>"
        for t, link, d, perma in items)
    xml_base = draw(st.sampled_from(["", " xml:base='http://base.test/dir/'", " xml:base='relative/'"]))
    return f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'{xml_base}><channel><title>T</title>" \
           f"{body}</channel></rss>".encode()


@FAST
@given(body=rss_feeds(), base=st.sampled_from([BASE, "https://news.test/", "http://127.0.0.1:8/x/y", "not a url"]))
def test_generated_feeds_are_deterministic_with_absolute_urls(body: bytes, base: str) -> None:
    first = _parse(body, base)
    assert first == _parse(body, base)
    _absolute_or_none(first.entries)


@cache
def _corpus(index: int) -> bytes:
    return FILES[index].read_bytes()


_FILE = st.integers(min_value=0, max_value=max(len(FILES) - 1, 0))


@needs_corpus
@FAST
@given(index=_FILE)
def test_corpus_feeds_are_deterministic_with_absolute_urls(index: int) -> None:
    body = _corpus(index)
    first = _parse(body, "http://127.0.0.1:8/feeds/")
    assert first == _parse(body, "http://127.0.0.1:8/feeds/"), FILES[index]
    _absolute_or_none(first.entries)


@needs_corpus
@FAST
@given(index=_FILE, data=st.data())
def test_truncated_and_flipped_corpus_feeds_never_raise(index: int, data: st.DataObject) -> None:
    body = bytearray(_corpus(index))
    assume(body)
    body = body[:data.draw(st.integers(0, len(body)), label="cut")]
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        if body:
            at = data.draw(st.integers(0, len(body) - 1))
            body[at] ^= data.draw(st.integers(1, 255))
    _absolute_or_none(_parse(bytes(body)).entries)


_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


@needs_corpus
@FAST
@given(index=_FILE, codec=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252", "utf-32"]),
       declared=st.sampled_from([None, "same", "utf-8", "utf-16", "iso-8859-1", "bogus-charset"]))
def test_reencoded_corpus_feeds_never_raise(index: int, codec: str, declared: str | None) -> None:
    """Each feed re-encoded, with a matching declaration, a wrong one, or none at all."""
    text = to_utf8(_corpus(index))[0].decode("utf-8")
    head = f"<?xml version='1.0' encoding='{codec if declared == 'same' else declared}'?>" if declared else ""
    text = head + _DECL.sub("", text, count=1)
    body = text.encode(codec, "xmlcharrefreplace")
    parsed = _parse(body)
    _absolute_or_none(parsed.entries)
    if declared == "same" and codec.startswith("utf"):  # nothing lost: the same entries as in UTF-8
        assert [(e.url, e.title) for e in parsed.entries] == [(e.url, e.title) for e in _parse(text.encode()).entries]


_LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
DOCTYPES = [
    f'<!DOCTYPE rss [<!ENTITY l0 "lol">{_LAUGHS}]>',
    '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE rss [<!ENTITY % r SYSTEM "http://127.0.0.1:9/evil.dtd"> %r;]>',
    '<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/rss.dtd">',
    '<!DOCTYPE rss [<!ENTITY big "' + "A" * 5000 + '">]>',
]
REFS = ["&l9;", "&x;", "&big;" * 50, "&r;", "&undefined;", "&#0;", "&#x110000;", "&#65;"]


@needs_corpus
@FAST
@given(index=_FILE, doctype=st.sampled_from(DOCTYPES), ref=st.sampled_from(REFS), data=st.data())
def test_entity_and_doctype_injection_expands_nothing(index: int, doctype: str, ref: str,
                                                      data: st.DataObject) -> None:
    text = to_utf8(_corpus(index))[0].decode("utf-8")
    decl = _DECL.match(text)
    at = decl.end() if decl else 0
    text = text[:at] + doctype + text[at:]
    tags = [m.end() for m in re.finditer(r"<(?:title|description|summary|content)\b[^>]*>", text)]
    if tags:  # a reference inside a text element, where an expanding parser would put the payload
        pos = data.draw(st.sampled_from(tags))
        text = text[:pos] + ref + text[pos:]
    body = text.encode()
    parsed = _parse(body)
    out = "".join(f"{e.title}{e.summary}{e.author}" for e in parsed.entries) + (parsed.title or "")
    assert "lollol" not in out and "root:" not in out and "A" * 5000 not in out
    assert len(out) <= len(body)  # nothing grew: no entity was expanded


@cache
def _json_feeds() -> list[dict[str, Any]]:
    """Our JSON Feed and the corpus's, as templates to break."""
    docs = [JSON_FEED]
    for path in FILES:
        if path.suffix == ".json":
            try:
                doc = json.loads(path.read_bytes())
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("items"), list):
                docs.append(doc)
    return docs


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@FAST
@given(doc_index=st.integers(0, 10), data=st.data())
def test_json_feeds_with_wrong_types_never_raise(doc_index: int, data: st.DataObject) -> None:
    docs = _json_feeds()
    doc = json.loads(json.dumps(docs[doc_index % len(docs)]))
    for _ in range(data.draw(st.integers(1, 4), label="replacements")):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(_JSON_VALUES, label="value")
    parsed = _parse(json.dumps(doc).encode())
    _absolute_or_none(parsed.entries)
    for e in parsed.entries:
        for field in (e.title, e.summary, e.author, e.guid):
            assert field is None or (isinstance(field, str) and field.encode())


# ---------------------------------------------------------------- build_doc on arbitrary HTML

_TAGS = ["html", "head", "body", "div", "p", "article", "main", "span", "a", "script", "style", "table", "td",
         "li", "h1", "br", "img", "iframe", "svg", "template", "noscript", "!--", "![CDATA[", "?xml", "meta"]


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["soup", "deep", "attr", "bytes", "empty"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\x00", b"<", b"<html>", b"<!--"]))
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    if kind == "deep":
        tag = draw(st.sampled_from(["div", "p", "span", "table", "b"]))
        depth = draw(st.integers(100, 3000))
        closed = draw(st.booleans())
        return ("<html><body>" + f"<{tag}>" * depth + "News text. " * 50
                + (f"</{tag}>" * depth if closed else "")).encode()
    if kind == "attr":
        size = draw(st.integers(1000, 100_000))
        return (f"<html><body><p class='{'x' * size}' data-x=\"{'&amp;' * (size // 10)}\">"
                + "Paragraph of article text. " * 30 + "</p></body></html>").encode()
    parts = draw(st.lists(st.tuples(st.sampled_from(_TAGS), st.booleans(), _XML_TEXT), max_size=60))
    return "".join(f"<{t}>{text}" + (f"</{t}>" if close else "") for t, close, text in parts).encode(
        draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), "replace")


_ENTRY = FeedEntry(feed="f", guid="g", url="http://127.0.0.1:8/a", title="T", summary="A summary.",
                   published_at=None, author=None)
_SETTINGS = Settings()


@settings(deadline=None, max_examples=max(EXAMPLES * 3 // 5, 1), suppress_health_check=[HealthCheck.too_slow])
@given(body=html_pages(), ctype=st.sampled_from(["text/html", "text/html; charset=utf-8", "application/xml", ""]),
       summary=st.sampled_from([None, "A summary."]))
def test_build_doc_never_raises_on_arbitrary_html(body: bytes, ctype: str, summary: str | None) -> None:
    entry = replace(_ENTRY, summary=summary)
    result = FetchResult(url=entry.url, final_url=entry.url, status=200, body=body,
                         headers={"content-type": ctype} if ctype else {})
    doc, page = build_doc(entry, result, _SETTINGS)
    assert page["outcome"] in ("extracted", "fallback", "failed")
    assert (doc is None) == (page["outcome"] == "failed")
    if doc is not None:
        assert doc.text and doc.text.encode()



@given(st.lists(st.tuples(st.sampled_from(["a.test", "b.test", "c.test", "d.test", ""]), st.integers(0, 999)),
                max_size=60))
def test_interleaving_over_hosts_reorders_only(pairs: list[tuple[str, int]]) -> None:
    """Any entries (some without a host): the same entries, each host's in its own order, and every round
    before a host's next entry visits every host that still has one."""
    from types import SimpleNamespace

    from flows.core.urls import host_of, interleave_hosts

    items = [SimpleNamespace(url=f"http://{h}/{n}" if h else "", n=i) for i, (h, n) in enumerate(pairs)]
    out = interleave_hosts(items)
    assert sorted(x.n for x in out) == list(range(len(items)))
    hosts = [host_of(x.url) for x in out]
    for h in set(hosts):
        assert [x.n for x in out if host_of(x.url) == h] == [x.n for x in items if host_of(x.url) == h]
    # Round k holds the k-th entry of every host that has one, so a host never repeats before the others run out.
    counts = {h: hosts.count(h) for h in set(hosts)}
    start = 0
    for k in range(max(counts.values(), default=0)):
        size = sum(1 for c in counts.values() if c > k)
        assert len(set(hosts[start:start + size])) == size
        start += size


@given(st.binary(max_size=4096))
def test_raw_pages_come_back_byte_for_byte(body: bytes) -> None:
    """Any body the archive is handed, text or not, decodes to itself under the codec its bytes announce."""
    blob = rawcodec.compress(body)
    assert rawcodec.encoding_of(blob) == "zstd" and rawcodec.decode("zstd", blob) == body
    level_one = pa.compress(body, "zstd", asbytes=True)  # how pages were archived before rawcodec.LEVEL
    assert rawcodec.encoding_of(level_one) == "zstd" and rawcodec.decode("zstd", level_one) == body
    legacy = zlib.compress(body, 1)
    assert rawcodec.encoding_of(legacy) == "zlib" and rawcodec.decode("zlib", legacy) == body
