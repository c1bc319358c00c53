"""The feeds stage against a real HTTP server on 127.0.0.1: the per-host bound and delay hold for feed requests
(an outlet's many section feeds on one host), and one feed that raises leaves its row while the others go on.

Covers: flows.run.collect
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flows.core.settings import FeedConfig, Settings, WarehouseSettings
from flows.core.stats import RunStats
from flows.run.collect import fetch_feeds

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Section</title>
<item><title>A story</title><link>http://127.0.0.1/story</link><guid>s1</guid></item></channel></rss>"""
HOLD = 0.15  # how long the server takes to answer: long enough that unbounded requests would overlap


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: list[float] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            srv.starts.append(time.monotonic())
            srv.paths.append(self.path)
        time.sleep(HOLD)  # a slow server, not synchronisation: the bound is what keeps requests apart
        with srv.lock:
            srv.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _serving(host: str = "127.0.0.1") -> Iterator[_Recorder]:
    srv = _Recorder(host)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    with _serving() as srv:
        yield srv


def _settings(per_host: int, delay: float, concurrency: int = 8) -> Settings:
    fetch = {"allowed_networks": ("127.0.0.0/8",), "per_host_concurrency": per_host, "min_host_delay": delay,
             "concurrency": concurrency, "retries": 0, "respect_robots": False}
    return Settings.model_validate({"fetch": fetch})


def _feeds(srv: _Recorder, n: int) -> list[FeedConfig]:
    port = srv.server_address[1]
    return [FeedConfig(name=f"section-{i}", url=f"http://127.0.0.1:{port}/section/{i}.xml") for i in range(n)]


def test_feeds_on_one_host_respect_the_per_host_bound(recorder: _Recorder) -> None:
    settings = _settings(per_host=2, delay=0)
    out = fetch_feeds(settings, _feeds(recorder, 8), {}, "run-1", RunStats())
    assert [r["outcome"] for r in out.fetch_rows] == ["ok"] * 8
    assert recorder.max_in_flight == 2


def test_feeds_on_one_host_respect_the_minimum_delay(recorder: _Recorder) -> None:
    delay = 0.1
    settings = _settings(per_host=8, delay=delay)
    fetch_feeds(settings, _feeds(recorder, 5), {}, "run-1", RunStats())
    starts = sorted(recorder.starts)
    assert len(starts) == 5
    # The gate spaces the scheduled starts by `delay`; the server sees each a little later, by an amount that
    # varies on a busy machine, so check the whole span rather than each gap (unbounded, it is a few ms).
    assert starts[-1] - starts[0] >= 4 * delay - 0.05


def test_feeds_are_started_round_robin_over_hosts_and_reported_in_config_order() -> None:
    """One outlet's section feeds listed together do not make the other outlets wait behind its delay."""
    with _serving("127.0.0.2") as a, _serving("127.0.0.3") as b:
        feeds = [FeedConfig(name=f"{name}-{i}", url=f"http://{host}:{srv.server_address[1]}/{name}/{i}.xml")
                 for name, host, srv in (("a", "127.0.0.2", a), ("b", "127.0.0.3", b)) for i in range(3)]
        out = fetch_feeds(_settings(per_host=1, delay=0, concurrency=1), feeds, {}, "run-1", RunStats())
        # One thread: the requests go out one at a time, alternating hosts.
        order = sorted([(t, "a" + p) for t, p in zip(a.starts, a.paths, strict=True)]
                       + [(t, "b" + p) for t, p in zip(b.starts, b.paths, strict=True)])
    assert [p for _, p in order] == ["a/a/0.xml", "b/b/0.xml", "a/a/1.xml", "b/b/1.xml", "a/a/2.xml",
                                     "b/b/2.xml"]
    assert [r["feed"] for r in out.fetch_rows] == [f.name for f in feeds]
    assert [r["outcome"] for r in out.fetch_rows] == ["ok"] * 6


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as real servers do

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(f"{self.client_address[0]}:{self.client_address[1]}")
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)


def test_a_connection_to_each_host_is_kept_across_requests_to_more_hosts_than_threads() -> None:
    """Round robin over more hosts than download threads must not close one host's connection to open the
    next one's (a TLS handshake each, on real outlets): every host keeps its one connection for the run."""
    hosts = [f"127.0.0.{i}" for i in range(2, 5)]  # three hosts, two threads
    servers = []
    with contextlib.ExitStack() as stack:
        for host in hosts:
            srv = stack.enter_context(_serving(host))
            srv.RequestHandlerClass = _KeepAliveHandler
            servers.append(srv)
        feeds = [FeedConfig(name=f"{host}-{i}", url=f"http://{host}:{srv.server_address[1]}/{i}.xml")
                 for i in range(3) for host, srv in zip(hosts, servers, strict=True)]
        out = fetch_feeds(_settings(per_host=1, delay=0, concurrency=2), feeds, {}, "run-1", RunStats())
    assert [r["outcome"] for r in out.fetch_rows] == ["ok"] * 9
    assert sum(len(s.paths) for s in servers) == 9
    assert [len(set(s.paths)) for s in servers] == [1] * len(hosts)


class _AnswersHandler(_KeepAliveHandler):
    """Answers a conditional request 304, /moved 301 to /feed.xml, /gone 404: each with an empty or short body."""

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(f"{self.client_address[1]} {self.path}")
        if self.headers.get("If-None-Match"):
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        status, body, ctype = {"/moved": (301, b"<a href='/feed.xml'>moved</a>", "text/html"),
                               "/gone": (404, b"<html><body>not here</body></html>", "text/html")
                               }.get(self.path, (200, FEED, "application/rss+xml"))
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/feed.xml")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_304_a_redirect_and_a_404_leave_their_connection_open_for_the_next_request(recorder: _Recorder) -> None:
    """httpcore closes a connection whose response was not read to its end: a quiet run's every 304 opened a new
    connection (a TLS handshake each, on a real outlet). One thread, one host: one connection for all of them."""
    recorder.RequestHandlerClass = _AnswersHandler
    port = recorder.server_address[1]
    feeds = [FeedConfig(name=f"s{i}", url=f"http://127.0.0.1:{port}/s{i}.xml") for i in range(4)]
    feeds += [FeedConfig(name="moved", url=f"http://127.0.0.1:{port}/moved"),
              FeedConfig(name="gone", url=f"http://127.0.0.1:{port}/gone")]
    states = {f.name: {"configured_url": f.url, "url": f.url, "etag": '"v1"'} for f in feeds[:4]}
    out = fetch_feeds(_settings(per_host=1, delay=0, concurrency=1), feeds, states, "run-1", RunStats())
    assert [r["outcome"] for r in out.fetch_rows] == ["not_modified"] * 4 + ["ok", "failed"]
    assert out.fetch_rows[-1]["error"] == "http_404"
    assert [p.split()[1] for p in recorder.paths] == ["/s0.xml", "/s1.xml", "/s2.xml", "/s3.xml", "/moved",
                                                      "/feed.xml", "/gone"]
    assert len({p.split()[0] for p in recorder.paths}) == 1  # one client port: one connection


def test_a_feed_url_python_cannot_parse_is_that_feeds_row(recorder: _Recorder) -> None:
    """Issue 20 case 10: the config refuses such a URL at load; should one reach the stage anyway (a feeds table
    edited by hand, an older config), it is that feed's failure and the others are fetched."""
    good = _feeds(recorder, 1)
    broken = FeedConfig.model_construct(name="broken", url="http://[::1:8765/x", tags=(), enabled=True,
                                        language=None)  # past the validator, as a config of old would be
    stats = RunStats()
    out = fetch_feeds(_settings(per_host=1, delay=0), [broken, *good], {}, "run-1", stats)
    rows = {r["feed"]: r for r in out.fetch_rows}
    assert rows["section-0"]["outcome"] == "ok"
    assert rows["broken"]["outcome"] == "failed" and rows["broken"]["error"], rows["broken"]
    assert (stats.feeds_ok, stats.feeds_failed) == (1, 1)


class _AlwaysNotModified(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(304)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_304_to_a_request_without_validators_is_a_failure(recorder: _Recorder) -> None:
    """A server that answers 304 to a request that sent no ETag or Last-Modified (a first fetch, a feed whose URL
    changed) has said nothing about the feed: taken as "not modified", the feed showed `ok` for ever without ever
    having been read. With the validators it sent, a 304 is "not modified" as before."""
    recorder.RequestHandlerClass = _AlwaysNotModified
    port = recorder.server_address[1]
    feeds = [FeedConfig(name=n, url=f"http://127.0.0.1:{port}/{n}.xml") for n in ("new", "moved", "known")]
    states = {"moved": {"configured_url": "http://127.0.0.1:1/old.xml", "url": "http://127.0.0.1:1/old.xml",
                        "etag": '"v1"'},
              "known": {"configured_url": feeds[2].url, "url": feeds[2].url, "last_modified": "Mon, 01 Jan 2026"}}
    out = fetch_feeds(_settings(per_host=1, delay=0, concurrency=1), feeds, states, "run-1", RunStats())
    rows = {r["feed"]: r for r in out.fetch_rows}
    assert [rows[n]["outcome"] for n in ("new", "moved", "known")] == ["failed", "failed", "not_modified"]
    assert rows["new"]["error"] == "http_304" and "without an ETag or Last-Modified" in rows["new"]["error_detail"]
    states_after = {r["feed"]: r for r in out.state_rows}
    assert states_after["new"]["consecutive_failures"] == 1 and states_after["known"]["consecutive_failures"] == 0


def test_a_feed_with_more_new_entries_than_a_run_takes_is_read_again_unchanged(recorder: _Recorder,
                                                                               tmp_path: Path) -> None:
    """Entries past max_articles_per_feed wait for the next run; the feed keeps no body hash, so that run parses
    it even if it has not changed (with the hash it was `unchanged`, not parsed, and they waited for the feed to
    change, for ever on a feed that never does). A feed whose every new entry was taken keeps its hash."""
    from flows.run.collect import select_new

    recorder.RequestHandlerClass = _ManyHandler
    port = recorder.server_address[1]
    feeds = [FeedConfig(name="many", url=f"http://127.0.0.1:{port}/many.xml"),
             FeedConfig(name="one", url=f"http://127.0.0.1:{port}/one.xml")]
    settings = _settings(per_host=1, delay=0, concurrency=1).model_copy(
        update={"warehouse": WarehouseSettings(path=tmp_path / "none.duckdb")})  # no warehouse: nothing known
    out = fetch_feeds(settings, feeds, {}, "run-1", RunStats())
    new = select_new(settings, out.entries, out.fetch_rows, 2, state_rows=out.state_rows)
    assert [e.feed for e in new] == ["many", "many", "one"]
    states = {r["feed"]: r for r in out.state_rows}
    assert states["many"]["body_hash"] is None and states["one"]["body_hash"]
    again = fetch_feeds(settings, feeds, states, "run-2", RunStats())
    assert [r["outcome"] for r in again.fetch_rows] == ["ok", "unchanged"]
    assert len([e for e in again.entries if e.feed == "many"]) == 5


class _ManyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        n = 5 if self.path == "/many.xml" else 1
        items = "".join(f"<item><title>T{i}</title><link>http://127.0.0.1/{self.path[1:5]}/{i}</link>"
                        f"<guid>{self.path}-{i}</guid></item>" for i in range(n))
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{items}</channel></rss>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass
