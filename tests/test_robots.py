"""robots.txt (flows/web/robots.py) and Crawl-delay (flows/web/politeness.py), fetched from real servers on
127.0.0.1.

Covers: flows.web.robots, flows.web.politeness
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from flows.core.sections import FetchSettings
from flows.core.urls import host_of
from flows.ops.localserver import LocalServer
from flows.web.fetch import FetchResult, fetch, make_client
from flows.web.politeness import HostGate
from flows.web.robots import MAX_ROBOTS_BYTES, RobotsCache, Rules, agent_token, rules_from

SETTINGS = FetchSettings(connect_timeout=1, read_timeout=1, total_timeout=2, allowed_networks=("127.0.0.1/32",))
AGENT = SETTINGS.user_agent

# RFC 9309 section 2.2.1: the '*' group applies only when no group names the crawler, and a group with an empty
# Disallow allows everything.
# The gate spaces the scheduled starts of slots; the times a test records lag them by a little scheduling jitter.
JITTER = 0.01
OWN_GROUP_ALLOWS = "User-agent: *\nDisallow: /\n\nUser-agent: newsflow\nDisallow:\n"


def _text(status: int, body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return send


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with make_client(SETTINGS) as c:
        yield c


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalServer]]:
    """Start a loopback server (its own origin) answering /robots.txt with the given status and body."""
    root = tmp_path_factory.mktemp("empty")
    servers: list[LocalServer] = []

    def start(body: str | bytes | None, status: int = 200) -> LocalServer:
        routes = {} if body is None else {"/robots.txt": _text(status, body if isinstance(body, bytes)
                                                                 else body.encode())}
        srv = LocalServer(root, routes=routes).__enter__()
        servers.append(srv)
        return srv

    yield start
    # Each shutdown waits for its server's poll interval: wait for them all at once.
    stops = [threading.Thread(target=srv.__exit__, args=(None, None, None)) for srv in servers]
    for t in stops:
        t.start()
    for t in stops:
        t.join()


def _getter(client: httpx.Client, asked: list[str] | None = None) -> Callable[[str], FetchResult]:
    def get(url: str) -> FetchResult:
        if asked is not None:
            asked.append(url)
        return fetch(client, url, SETTINGS, max_bytes=MAX_ROBOTS_BYTES, accept="text/plain, */*;q=0.5")
    return get


def test_agent_token() -> None:
    assert agent_token(AGENT) == "newsflow"
    assert agent_token("NewsFlow/2 (+https://x.test)") == "newsflow"


def test_own_group_with_empty_disallow_replaces_star_group() -> None:
    rules = Rules.parse(OWN_GROUP_ALLOWS, "newsflow")
    assert rules.allowed("http://x.test/") and rules.allowed("http://x.test/any/page.html")
    assert not Rules.parse(OWN_GROUP_ALLOWS, "otherbot").allowed("http://x.test/any/page.html")


def test_own_group_served_over_http(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve(OWN_GROUP_ALLOWS)
    assert RobotsCache(_getter(client), AGENT).check(srv.url("/news/story.html")) is None


def test_longest_match_and_allow_wins_tie() -> None:
    rules = Rules.parse("User-agent: *\nDisallow: /drafts\nAllow: /drafts/public\nDisallow: /drafts/public/x\n"
                        "Disallow: /a\nAllow: /a\n", "newsflow")
    assert not rules.allowed("http://x.test/drafts/1")
    assert rules.allowed("http://x.test/drafts/public/2")
    assert not rules.allowed("http://x.test/drafts/public/x.html")
    assert rules.allowed("http://x.test/a/b")  # equal length: allow wins
    assert rules.allowed("http://x.test/elsewhere")


def test_wildcards_and_end_anchor() -> None:
    rules = Rules.parse("User-agent: newsflow\nDisallow: /*.pdf$\nDisallow: /search*q=\nAllow: /open$\n"
                        "Disallow: /open\n", "newsflow")
    assert not rules.allowed("http://x.test/news/a/b.pdf")
    assert rules.allowed("http://x.test/news/a.pdf?x=1")  # '$' anchors at the end of path + query
    assert not rules.allowed("http://x.test/search/all?q=rain")
    assert rules.allowed("http://x.test/search/all?page=2")
    assert rules.allowed("http://x.test/open") and not rules.allowed("http://x.test/open/more")
    assert rules.allowed("http://x.test/robots.txt")


SHARED = """
# comment
User-agent: *
Disallow: /private/
Allow: /private/open$

User-agent: newsflow
User-agent: other
Disallow: /news/*.pdf$
Disallow: /drafts
Allow: /drafts/public
Disallow:
"""


def test_group_shared_by_agents_and_star_fallback() -> None:
    rules = Rules.parse(SHARED, "newsflow")
    assert rules.allowed("http://x.test/private/anything")  # its own group replaces the * group
    assert not rules.allowed("http://x.test/drafts/x") and rules.allowed("http://x.test/drafts/public/y")
    assert not Rules.parse(SHARED, "other").allowed("http://x.test/drafts/x")
    star = Rules.parse(SHARED, "someone-else")
    assert not star.allowed("http://x.test/private/a") and star.allowed("http://x.test/private/open")
    assert not star.allowed("http://x.test/private/open/more")


@pytest.mark.parametrize(("status", "error", "allowed"), [
    (404, "http_404", True), (401, "http_401", True), (403, "http_403", True),
    (500, "http_500", False), (503, "http_503", False), (None, "timeout", False),
])
def test_status_policy(status: int | None, error: str, allowed: bool) -> None:
    result = FetchResult(url="http://x.test/robots.txt", final_url="http://x.test/robots.txt", status=status,
                         body=None, error=error)
    assert rules_from(result, "newsflow").allowed("http://x.test/page") is allowed


def test_groups_for_one_agent_are_merged_and_bom_ignored() -> None:
    text = "\ufeffUser-agent: newsflow\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\nUser-agent: newsflow\n" \
           "Disallow: /b\n"
    rules = Rules.parse(text, "newsflow")
    assert not rules.allowed("http://x.test/a") and not rules.allowed("http://x.test/b")
    assert rules.allowed("http://x.test/c")


def test_200_rules_applied(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve("User-agent: *\nDisallow: /private/\n")
    cache = RobotsCache(_getter(client), AGENT)
    assert cache.check(srv.url("/articles/1.html")) is None
    assert cache.check(srv.url("/private/2.html")) == "robots.txt disallows this path for user agent 'newsflow'"


def test_404_allows_everything(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve(None)
    rules = RobotsCache(_getter(client), AGENT).rules_for(srv.url("/x"))
    assert rules.allowed(srv.url("/anything")) and "HTTP 404" in (rules.note or "")


def test_500_disallows_everything(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve("User-agent: *\nDisallow:\n", status=500)
    refused = RobotsCache(_getter(client), AGENT).check(srv.url("/articles/1.html"))
    assert refused == "robots.txt unreachable (HTTP 500): all disallowed"


def test_network_failure_disallows_everything(client: httpx.Client) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = RobotsCache(_getter(client), AGENT).check(f"http://127.0.0.1:{port}/articles/1.html")
    assert refused == "robots.txt unreachable (connection_error): all disallowed"


def test_oversize_disallows_everything(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve(b"User-agent: *\nDisallow: /private/\n" + b"#" * MAX_ROBOTS_BYTES)
    refused = RobotsCache(_getter(client), AGENT).check(srv.url("/articles/1.html"))
    assert refused == "robots.txt unreachable (too_large): all disallowed"


def test_cache_fetches_once_per_origin(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    one, two = serve("User-agent: *\nDisallow: /private/\n"), serve("User-agent: *\nDisallow:\n")
    asked: list[str] = []
    cache = RobotsCache(_getter(client, asked), AGENT)
    start = threading.Barrier(8)

    def check(i: int) -> str | None:
        start.wait()  # all threads ask at the same moment
        return cache.check((one if i % 2 else two).url(f"/private/{i}.html"))

    with ThreadPoolExecutor(8) as pool:
        threads_out = list(pool.map(check, range(8)))
    assert cache.check(one.url("/private/again.html")) is not None
    assert sorted(asked) == sorted([one.url("/robots.txt"), two.url("/robots.txt")])
    assert one.hits["/robots.txt"] == 1 and two.hits["/robots.txt"] == 1
    assert [r is None for r in threads_out] == [i % 2 == 0 for i in range(8)]


def _gate_getter(gate: HostGate, client: httpx.Client, starts: list[float]) -> Callable[[str], FetchResult]:
    """Fetch robots.txt through the gate, as pages.download does, noting when each request starts."""
    def get(url: str) -> FetchResult:
        with gate.slot(host_of(url)):
            starts.append(time.monotonic())
            return _getter(client)(url)
    return get


def _two_slots(gate: HostGate, host: str) -> list[float]:
    starts: list[float] = []
    for _ in range(2):
        with gate.slot(host):
            starts.append(time.monotonic())
    return starts


def test_crawl_delay_raises_host_delay(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve("User-agent: *\nDisallow: /\n\nUser-agent: newsflow\nCrawl-delay: 0.3\nDisallow: /private/\n")
    gate = HostGate(per_host=2, delay=0.0)
    robots_start: list[float] = []
    get = _gate_getter(gate, client, robots_start)
    assert gate.admit(srv.url("/a.html"), get, AGENT) is None
    assert gate.admit(srv.url("/private/b.html"), get, AGENT) is not None
    assert gate.delay_for("127.0.0.1") == pytest.approx(0.3)
    first, second = _two_slots(gate, "127.0.0.1")
    assert first - robots_start[0] >= 0.3 - JITTER  # the robots.txt request counts as a request to the host
    assert second - first >= 0.3 - JITTER
    assert gate.crawl_delay_notes() == []


def test_crawl_delay_below_min_host_delay_is_ignored(client: httpx.Client,
                                                     serve: Callable[..., LocalServer]) -> None:
    srv = serve("User-agent: newsflow\nCrawl-delay: 0.1\n")
    gate = HostGate(per_host=2, delay=0.25)
    assert gate.admit(srv.url("/a.html"), _getter(client), AGENT) is None
    assert gate.delay_for("127.0.0.1") == 0.25


def test_crawl_delay_is_capped(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve("User-agent: *\nCrawl-delay: 3600\n")
    gate = HostGate(per_host=2, delay=0.0, max_crawl_delay=0.2)
    assert gate.admit(srv.url("/a.html"), _getter(client), AGENT) is None
    assert gate.admit(srv.url("/b.html"), _getter(client), AGENT) is None
    assert gate.delay_for("127.0.0.1") == 0.2
    first, second = _two_slots(gate, "127.0.0.1")
    assert second - first >= 0.2 - JITTER
    assert gate.crawl_delay_notes() == [
        f"{srv.base}: robots.txt Crawl-delay 3600 s capped at fetch.max_crawl_delay = 0.2 s"]


def test_no_robots_no_delay(client: httpx.Client, serve: Callable[..., LocalServer]) -> None:
    srv = serve(None)
    gate = HostGate(per_host=2, delay=0.0)
    assert gate.admit(srv.url("/a.html"), _getter(client), AGENT) is None
    assert gate.delay_for("127.0.0.1") == 0.0


def test_a_request_that_starts_late_pushes_the_next_one_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sleep that overruns (a busy machine) makes a request start later than planned; the host must still see
    # its requests `delay` apart, so the next one waits from the late start, not from the planned one.
    real_sleep = time.sleep
    overruns = [0.15]

    def late_sleep(seconds: float) -> None:
        real_sleep(seconds + (overruns.pop() if overruns else 0.0))

    monkeypatch.setattr(time, "sleep", late_sleep)
    gate = HostGate(per_host=1, delay=0.3)
    starts: list[float] = []
    for _ in range(3):
        with gate.slot("example.test"):
            starts.append(time.monotonic())
    assert not overruns  # the second request's wait did overrun
    assert starts[2] - starts[1] >= 0.3 - JITTER
    assert starts[1] - starts[0] >= 0.3 - JITTER
