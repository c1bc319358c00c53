"""Every file of the shared feed corpus (2,372, none skipped) through the full `ingest` flow, with real news pages.

Each feed is served from 127.0.0.1 with every host in it rewritten to a loopback address of its own (127.1.x.y,
the same one for the same host across all files), where any article path answers with one of the fundus pages
(chosen by a hash of the path) or a 404, and robots.txt is a 404. The run allows only 127.0.0.0/8 and refuses
private addresses, so a link the rewriting missed is refused and recorded, never fetched. Before the run, every
entry link the parser will yield is checked to be a loopback address literal, so no name is ever sent to the
system resolver (netguard resolves names with getaddrinfo before it checks the address).

Covers: flows.run.ingest
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import ipaddress
import json
import os
import re
import selectors
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from corpus import corpora_root, feed_files, fundus_files, missing

from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.feeds.parse import parse_feed, to_utf8
from flows.warehouse import database

FILES = feed_files()
PAGES = fundus_files()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FILES or not PAGES, reason=missing("feeds/ and extraction/fundus/test_data/")),
    pytest.mark.timeout(900),
]
# Share of article paths (percent) that get a fundus page; the others get a 404 and fall back to the feed summary.
# It bounds the run's cost: extraction and NER of a full news page is what takes the time.
PAGE_SHARE = int(os.environ.get("NEWSFLOW_REALWORLD_PAGE_SHARE", "10"))
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

# An http(s) URL's scheme, user info, host and port, also with JSON's escaped slashes (`https:\/\/`).
_URL = re.compile(r"(?i)\bhttps?:(?://|\\/\\/)(?:[^/\\\s\"'<>@]*@)?(\[[0-9a-f:.]*\]|[^/\\\s\"'<>:?#&;,)\]]+)(:\d*)?")
# Namespace names and the JSON Feed version are identifiers, not links: rewriting them would change the format.
_KEEP = re.compile(r"""(?:xmlns(?::[\w.-]+)?\s*=\s*["']|"version"\s*:\s*")$""")


class Rewriter:
    """Every URL host in a feed to a loopback address of its own, the same address for the same host."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hosts: dict[str, str] = {}

    def address(self, host: str) -> str:
        host = host.lower().strip("[]").rstrip(".")
        if host not in self.hosts:
            i = len(self.hosts)
            self.hosts[host] = f"127.1.{i // 250}.{i % 250 + 1}"
        return self.hosts[host]

    def _sub(self, m: re.Match[str]) -> str:
        if _KEEP.search(m.string[max(0, m.start() - 40):m.start()]):
            return m.group(0)
        slashes = "\\/\\/" if m.group(0)[m.group(0).index(":") + 1] == "\\" else "//"
        return f"http:{slashes}{self.address(m.group(1))}:{self.port}"

    def text(self, text: str) -> str:
        return _URL.sub(self._sub, text)

    def feed(self, body: bytes) -> bytes:
        """The body with hosts rewritten, in its own encoding (UTF-16/32 re-encoded, 8-bit kept byte for byte)."""
        encoding = to_utf8(body)[1] or "utf-8"
        if encoding.startswith(("utf-16", "utf-32")):
            bom = next((b for b in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                                    codecs.BOM_UTF16_BE) if body.startswith(b)), b"")
            try:
                return bom + self.text(body[len(bom):].decode(encoding)).encode(encoding)
            except UnicodeError:
                pass
        # latin-1 maps bytes to code points one to one: ASCII URLs are rewritten, every other byte is kept.
        return self.text(body.decode("latin-1")).encode("latin-1")


class Site:
    """What every loopback address answers: the feeds on the feed address, pages or 404s on any article path."""

    def __init__(self, feeds: dict[str, bytes], pages: list[bytes]) -> None:
        self.feeds = feeds
        self.pages = pages
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def respond(self, target: str) -> tuple[int, str, bytes]:
        path = urlsplit(target).path
        kind = "feed" if path in self.feeds else "robots" if path == "/robots.txt" else "page"
        with self.lock:
            self.hits[kind] = self.hits.get(kind, 0) + 1
        if kind == "feed":
            suffix = Path(path).suffix
            ctype = {".json": "application/feed+json", ".html": "text/html"}.get(suffix, "application/xml")
            return 200, ctype, self.feeds[path]
        digest = int.from_bytes(hashlib.sha256(target.encode()).digest()[:8], "big")
        if kind == "page" and digest % 100 < PAGE_SHARE:
            with self.lock:
                self.hits["page_200"] = self.hits.get("page_200", 0) + 1
            return 200, "text/html", self.pages[(digest // 100) % len(self.pages)]
        return 404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>"


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: the warehouse rows are the record
            pass

        def do_GET(self) -> None:
            status, ctype, body = site.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (a size cap) is expected


@contextmanager
def serving(site: Site, addresses: list[tuple[str, int]]) -> Iterator[list[_Server]]:
    """One HTTP server per (address, port), all accepted by one selector thread."""
    servers = [_Server(addr, _handler(site)) for addr in addresses]
    stop = threading.Event()

    def loop() -> None:
        with selectors.DefaultSelector() as sel:
            for srv in servers:
                srv.timeout = 0
                sel.register(srv.socket, selectors.EVENT_READ, srv)
            while not stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    key.data.handle_request()

    thread = threading.Thread(target=loop, name="realworld-sites", daemon=True)
    thread.start()
    try:
        yield servers
    finally:
        stop.set()
        thread.join()
        for srv in servers:
            srv.server_close()


def _free_port(host: str) -> int:
    with _Server((host, 0), BaseHTTPRequestHandler) as probe:
        return probe.server_address[1]


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _config(tmp_path: Path, feeds: dict[str, str]) -> Path:
    db = tmp_path / "wh" / "realworld.duckdb"
    lines = [
        "[warehouse]", f"path = {_toml(str(db))}", f"staging_dir = {_toml(str(db.with_suffix('.staging')))}",
        f"snapshot_path = {_toml(str(db.with_suffix('.snapshot.duckdb')))}", "lock_wait_seconds = 30",
        "[fetch]", 'allowed_networks = ["127.0.0.0/8"]', "allow_private_networks = false", "min_host_delay = 0",
        "connect_timeout = 5", "read_timeout = 10", "total_timeout = 20", "retries = 0", "concurrency = 8",
        "max_articles_per_feed = 1", "respect_robots = true",  # every file runs; one entry is enough
        "[pipeline]", "workers = 2", f"seeds_dir = {_toml(str(PROJECT_ROOT / 'seeds'))}",
    ]
    for name, url in feeds.items():
        lines += ["[[feeds]]", f"name = {_toml(name)}", f"url = {_toml(url)}"]
    path = tmp_path / "realworld.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# Invariants run here until the warehouse checks (warehouse/checks/*.sql, flows/warehouse/checks.py) land; each
# returns the rows that break it.
INVARIANTS = {
    "feed_fetch_per_feed": "select feed, count(*) as n from feed_fetches group by feed having count(*) <> 1",
    "failed_fetch_without_error": "select feed from feed_fetches where (outcome = 'failed') <> (error is not null)",
    "fetched_feed_without_state": "select ff.feed from feed_fetches ff left join feeds f using (feed) "
                                  "where ff.outcome <> 'skipped' and f.feed is null",
    "orphan_article_entities": "select ae.* from article_entities ae left join articles a using (article_id) "
                               "left join entities e using (entity_id) "
                               "where a.article_id is null or e.entity_id is null",
    "orphan_duplicates": "select d.url from duplicates d left join articles a on a.article_id = d.duplicate_of "
                         "where a.article_id is null",
    "url_stored_and_duplicate": "select url from articles join duplicates using (url)",
    "untagged_articles": "select url from articles where ner_pipeline is null and ner_skip_reason is null",
    "empty_text": "select url from articles where text is null or trim(text) = ''",
    "article_without_entry": "select a.url from articles a left join entries e on e.url = a.url "
                             "where not a.is_seed and e.url is null",
    "page_without_fetch_row": "select a.url from articles a left join page_fetches p using (url) "
                              "where a.body_source = 'extracted' and p.url is null",
    # Nothing beyond loopback was ever fetched: every page with an HTTP status came from 127.0.0.0/8.
    "fetched_beyond_loopback": "select url, final_url from page_fetches where http_status is not null "
                               "and not regexp_matches(final_url, '^https?://127\\.')",
}


# Invariants broken by a bug outside this test's reach, with the bug; the test xfails while only these break.
# staging.write builds each Parquet file with pa.Table.from_pylist(rows), which takes its columns from the first
# row: when the first document of a batch is one the NER pre-check skipped (a copy, so no `ner_pipeline` or
# `mentions` key), every article of that batch is stored untagged and its entities are lost. Remove this entry
# once documents are staged with an explicit schema (the typed Document record).
# Checks known to fail, with why (the entry that was here, untagged_articles, was fixed by the typed Document
# record with its explicit Arrow schema). Keep it empty: a failing check is a bug.
KNOWN: dict[str, str] = {}


def _check_hook(settings: Settings) -> dict[str, str]:
    """HOOK: the project's own warehouse checks (warehouse/checks/*.sql, run by flows/warehouse/checks.py), once that
    work has landed on this branch; each failed check by name, with its offending rows."""
    try:
        from flows.warehouse import checks  # type: ignore[attr-defined]
    except ImportError:
        return {}
    wh = settings.warehouse
    with database.connect(wh, read_only=True) as conn:
        results = checks.run_checks(conn, staging_dir=wh.staging_dir)
    return {r.name: f"{r.offending_rows} rows {r.error or r.sample}" for r in results if r.failed}


def test_every_corpus_feed_through_ingest(prefect_harness: None, tmp_path: Path) -> None:
    from flows.cli import main

    pages = [gzip.decompress(p.read_bytes()) for p in PAGES]
    root = corpora_root() / "feeds"
    feed_port = _free_port("127.0.0.1")
    page_port = _free_port("127.1.0.1")
    rewriter = Rewriter(page_port)
    served: dict[str, bytes] = {}
    urls: dict[str, str] = {}
    for file in FILES:
        name = file.relative_to(root).as_posix()
        path = "/feeds/" + quote(name)
        served[path] = rewriter.feed(file.read_bytes())
        urls[name] = f"http://127.0.0.1:{feed_port}{path}"

    # Every link the run can follow, found the way the run finds it; a name here would reach the resolver.
    listen = {("127.0.0.1", feed_port)}
    escaped = []
    for name, url in urls.items():
        for entry in parse_feed(served[urlsplit(url).path], url, name).entries:
            if entry.url is None:
                continue
            parts = urlsplit(entry.url)
            try:
                ok = ipaddress.ip_address(parts.hostname or "") in LOOPBACK
            except ValueError:
                ok = False
            if not ok:
                escaped.append((name, entry.url))
            else:
                listen.add((parts.hostname or "", parts.port or 80))
    assert not escaped, f"links the rewriting missed (they would be resolved): {escaped[:20]}"

    site = Site(served, pages)
    config = _config(tmp_path, urls)
    settings = load_settings(config, env={})
    start = time.monotonic()
    with serving(site, sorted(listen)):
        code = main(["ingest", "--config", str(config)])
    seconds = time.monotonic() - start
    assert code == 0

    with database.connect(settings.warehouse, read_only=True) as conn:
        run = conn.execute("select status, feeds_total, feeds_ok, feeds_failed, entries_seen, entries_new, "
                           "pages_fetched, pages_failed, articles_new, fallbacks, duplicates_exact, "
                           "duplicates_near from runs where flow = 'ingest'").fetchall()
        fetches = conn.execute("select count(*), count(distinct feed) from feed_fetches").fetchone()
        outcomes = dict(conn.execute("select coalesce(error, outcome), count(*) from feed_fetches group by 1 "
                                     "order by 2 desc").fetchall())
        pages_by = dict(conn.execute("select coalesce(error, outcome), count(*) from page_fetches group by 1 "
                                     "order by 2 desc").fetchall())
        broken = {name: conn.execute(f"select count(*) from ({sql})").fetchone()[0]
                  for name, sql in INVARIANTS.items()}
    print(f"\nrealworld: {len(FILES)} feeds, {len(rewriter.hosts)} hosts rewritten, {len(listen)} addresses "
          f"served, {seconds:.1f} s; run {run}; feed outcomes {outcomes}; pages {pages_by}; hits {site.hits}")
    assert len(run) == 1 and run[0][0] == "completed", run
    assert fetches == (len(FILES), len(FILES))
    assert run[0][1] == len(FILES)
    failed = {k: f"{v} rows" for k, v in broken.items() if v} | _check_hook(settings)
    assert {k: v for k, v in failed.items() if k not in KNOWN} == {}
    if failed:
        pytest.xfail("; ".join(f"{k} ({v}): {KNOWN[k]}" for k, v in failed.items()))
