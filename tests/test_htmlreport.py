"""`newsflow report`: one self-contained HTML page, opened in a real headless Chromium whose every request goes to
a trap proxy on 127.0.0.1 (which answers 403 and forwards nothing) and whose resolver resolves nothing, so the
test sees any request the page makes and no packet leaves loopback.

Covers: flows.warehouse.reportpage, flows.run.artifacts
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from conftest import write_config
from demo_warehouse import copy_demo, run_ingest

from flows.cli import main
from flows.core.settings import PROJECT_ROOT, WarehouseSettings, load_settings
from flows.core.stats import RunStats
from flows.run import artifacts
from flows.run.finish import write_html_report
from flows.warehouse import aggregates, database, reportpage

CHARTS = {"story-0", "feed-days", "top-entities", "surges", "syndication", "runs"}
# Chromium's own update and time checks; they reach the trap like anything else and are not the page's.
BROWSER_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)(:\d+)?$")
PAYLOAD = '"><script>document.body.dataset.pwned=1</script><img src=x onerror="document.body.dataset.pwned=2">'


class Trap:
    """An HTTP proxy on 127.0.0.1 that records the host of every request and refuses it."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def refuse(self) -> None:
                host = self.path.split("/")[2] if "://" in self.path else self.path
                trap.hosts.append(host.rsplit(":", 1)[0] if self.command == "CONNECT" else host)
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_CONNECT = refuse  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def page_hosts(self) -> set[str]:
        return {h for h in self.hosts if not BROWSER_HOSTS.search(h)}


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    t.thread.start()
    try:
        yield t
    finally:
        t.server.shutdown()
        t.server.server_close()


def browse(page: Path, trap: Trap, tmp_path: Path) -> str:
    """The DOM of `page` after Chromium loaded it and its scripts ran."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    port = trap.server.server_address[1]
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def rendered(dom: str) -> dict[str, str]:
    """data-chart -> data-rendered for every chart in the DOM."""
    found = {}
    for tag in re.findall(r"<svg [^>]*>", dom):
        name = re.search(r'data-chart="([^"]+)"', tag)
        if name:
            state = re.search(r'data-rendered="([^"]+)"', tag)
            found[name.group(1)] = state.group(1) if state else "not marked"
    return found


def references(html: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every src/href/srcset/action/data/poster in the page, and CSS url()s."""
    refs = [(t, a, v) for t, attrs in re.findall(r"<([a-zA-Z]+)([^>]*)>", html)
            for a, v in re.findall(r'\b(src|href|srcset|action|data|poster|xlink:href)="([^"]*)"', attrs)]
    refs += [("style", "url", v) for v in re.findall(r"url\(([^)]*)\)", html)]
    refs += [("style", "import", v) for v in re.findall(r"@import\s+([^;]+)", html)]
    return refs


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    return copy_demo(tmp_path_factory, tmp_path_factory.mktemp("report") / "demo.duckdb")


def test_the_trap_sees_requests_and_the_marker_sees_empty_charts(trap: Trap, tmp_path: Path) -> None:
    """The two instruments of these tests can fail: a page that loads things is caught, an empty chart is 'no'."""
    page = tmp_path / "control.html"
    page.write_text('<!doctype html><html><body><img src="http://news.example/x.png">'
                    '<link rel="stylesheet" href="https://cdn.example/a.css">'
                    '<svg class="chart" data-chart="empty" width="0" height="0"></svg>'
                    f"<script>{reportpage._SCRIPT}</script></body></html>")
    dom = browse(page, trap, tmp_path)
    assert {"news.example", "cdn.example"} <= trap.page_hosts()
    assert rendered(dom) == {"empty": "no"}


def test_demo_report_renders_every_chart_and_loads_nothing(demo_db: Path, trap: Trap, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site" / "report.html"
    assert main(["report", "--out", str(out), "--warehouse", str(demo_db)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    html = out.read_text()

    dom = browse(out, trap, tmp_path)
    assert rendered(dom) == dict.fromkeys(CHARTS, "yes")
    assert 'data-charts="6"' in dom
    assert trap.page_hosts() == set()

    with duckdb.connect(str(demo_db), read_only=True) as conn:
        # Stored articles, and the copies recorded of them (a story's timeline links its copies too).
        urls = {u for (u,) in conn.execute("select url from articles union all select url from duplicates").fetchall()}
        feeds = [f for (f,) in conn.execute("select feed from feeds").fetchall()]
        (run_id,) = conn.execute("select run_id from runs").fetchone()
    for tag, attr, value in references(html):  # nothing is loaded: the only references are links to articles
        assert (tag, attr) == ("a", "href") and value in urls, (tag, attr, value)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for feed in feeds:
        assert feed in html
    assert "Chinese President Xi Jinping" in html and "5 copies, 5 outlets" in html
    assert "Vladimir Putin" in html and run_id[:8] in html
    assert "backing_off" in html and "http_404" in html


def test_strings_from_the_web_are_escaped(demo_db: Path, trap: Trap, tmp_path: Path) -> None:
    db = shutil.copyfile(demo_db, tmp_path / "hostile.duckdb")
    with duckdb.connect(str(db)) as conn:
        conn.execute("update articles set title = $t, url = 'javascript:alert(1)' "
                     "where article_id = (select duplicate_of from duplicates limit 1)", {"t": PAYLOAD})
        conn.execute("update entities set name = $n where entity_id = "
                     "(select entity_id from entity_mentions_top limit 1)", {"n": PAYLOAD})
        conn.execute("update feed_fetches set error = $e where outcome = 'failed'", {"e": PAYLOAD})
        conn.execute("update duplicates set feed = $f where feed = 'Meridian Post'", {"f": PAYLOAD})
        conn.execute("update runs set message = $m, checks_failed = 1", {"m": PAYLOAD})
        conn.execute("insert into check_results (run_id, check_name, offending_rows, sample, duration_ms, checked_at) "
                     "select run_id, $c, 3, $s, 1.5, now() from runs",
                     {"c": PAYLOAD, "s": json.dumps([{"title": PAYLOAD}])})
    out = tmp_path / "hostile.html"
    assert main(["report", "--out", str(out), "--warehouse", str(db)]) == 0
    html = out.read_text()

    assert "<img" not in html and "<script>document" not in html and 'onerror="' not in html
    assert html.count("&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;") >= 6
    assert "javascript:" not in " ".join(v for _, _, v in references(html))
    # The demo run's own checks all held; the hostile one inserted here is the one that failed.
    assert "Failed checks" in html and re.search(r"\b1 of \d+ failed", html)

    dom = browse(out, trap, tmp_path)
    assert "pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    assert dom.count("<script") == 1
    assert rendered(dom) == dict.fromkeys(CHARTS, "yes")
    assert trap.page_hosts() == set()


def test_an_empty_warehouse_gives_a_page_that_says_so(trap: Trap, tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    with duckdb.connect(str(db)) as conn:
        database.migrate(conn)
        version = database.schema_version(conn)
    out = tmp_path / "empty.html"
    assert main(["report", "--out", str(out), "--warehouse", str(db)]) == 0
    assert "Nothing here yet" in out.read_text()
    with duckdb.connect(str(db), read_only=True) as conn:
        assert database.schema_version(conn) == version  # `report` never migrates
    dom = browse(out, trap, tmp_path)
    assert 'data-charts="0"' in dom and "Nothing here yet" in dom
    assert trap.page_hosts() == set()


def test_a_duckdb_file_that_is_not_a_warehouse_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    db = tmp_path / "other.duckdb"
    duckdb.connect(str(db)).close()
    before = db.read_bytes()
    out = tmp_path / "other.html"
    assert main(["report", "--out", str(out), "--warehouse", str(db)]) == 2
    assert "not a newsflow warehouse" in capsys.readouterr().err
    assert not out.exists() and db.read_bytes() == before


def test_only_http_urls_become_links() -> None:
    assert reportpage.link("https://news.example/a?b=1&c=2", "<b>") == (
        '<a href="https://news.example/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">&lt;b&gt;</a>')
    for url in ("javascript:alert(1)", "data:text/html,<b>", "seed:2023-02-22.txt", "//news.example/a", None):
        assert reportpage.link(url, "<b>") == "&lt;b&gt;"


def test_an_older_or_odd_schema_gives_a_page_not_a_traceback(tmp_path: Path) -> None:
    old = tmp_path / "v3.duckdb"
    with duckdb.connect(str(old)) as conn:
        database.migrate(conn, known=database.migrations()[:3])  # no views, no check_results
        conn.execute("insert into runs (run_id, flow, started_at, status) values ('r1', 'ingest', now(), 'completed')")
    assert main(["report", "--out", str(tmp_path / "v3.html"), "--warehouse", str(old)]) == 0
    page = (tmp_path / "v3.html").read_text()
    # Seven sections need later tables or views; feed health reads only tables a version 3 warehouse has.
    assert "Schema version 3 of" in page and page.count("Not available in this warehouse") == 7

    # A file whose schema_migrations is not newsflow's is someone else's (flows/warehouse/identity.py): refused in
    # one line, and no page is written.
    odd = tmp_path / "odd.duckdb"
    with duckdb.connect(str(odd)) as conn:
        conn.execute("create table schema_migrations as select 1 as version")
    assert main(["report", "--out", str(tmp_path / "odd.html"), "--warehouse", str(odd)]) == 2
    assert not (tmp_path / "odd.html").exists()


def test_a_missing_warehouse_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "nowhere" / "none.duckdb"
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out), "--warehouse", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no warehouse yet" in err
    assert not db.exists() and not out.exists()


def test_an_unwritable_out_is_one_line_and_exit_2(demo_db: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["report", "--out", str(tmp_path / "file" / "r.html"), "--warehouse", str(demo_db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report" in err


def test_ingest_hook_writes_the_configured_page_and_the_run_report_says_where(demo_db: Path, tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture
                                                                            ) -> None:
    out = tmp_path / "pages" / "newsflow.html"
    settings = load_settings(warehouse=demo_db, overrides={"report": {"html_path": str(out)}}, env={})
    log = logging.getLogger("test_htmlreport")
    assert write_html_report(settings, log) == out
    assert "Most syndicated stories" in out.read_text()
    md = artifacts.markdown("run-1", RunStats(), [], [], 3, html_path=out)
    assert f"`{out}`" in md

    relative = load_settings(overrides={"report": {"html_path": "warehouse/r.html"}}, env={})
    assert relative.report.html_file() == PROJECT_ROOT / "warehouse" / "r.html"
    off = load_settings(warehouse=demo_db, env={})
    assert off.report.html_file() is None and write_html_report(off, log) is None

    # A page that cannot be written is a warning, never the end of the run.
    (tmp_path / "file").write_text("not a folder")
    bad = load_settings(warehouse=demo_db, overrides={"report": {"html_path": str(tmp_path / "file" / "r.html")}},
                        env={})
    with caplog.at_level(logging.WARNING, logger="test_htmlreport"):
        assert write_html_report(bad, log) is None
    assert "HTML report not written" in caplog.text


def test_an_ingest_run_rewrites_the_page_and_its_artifact_says_where(demo_db: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    (tmp_path / "wh").mkdir()
    db = Path(shutil.copyfile(demo_db, tmp_path / "wh" / "demo.duckdb"))
    page = tmp_path / "site" / "newsflow.html"
    summary = run_ingest(write_config(tmp_path, "", warehouse=db), db,
                         env={"NEWSFLOW_REPORT__HTML_PATH": str(page)})  # no feeds: a run that only reports
    assert summary["status"] == "completed", summary
    assert summary["run_id"][:8] in page.read_text() and "Most syndicated stories" in page.read_text()
    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["ingest-report"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["run_id"]])))
    assert f"`{page}`" in art.data


def test_a_busy_warehouse_is_reported_from_its_snapshot(demo_db: Path, tmp_path: Path) -> None:
    db = Path(shutil.copyfile(demo_db, tmp_path / "busy.duckdb"))
    settings = WarehouseSettings(path=db, snapshot_path=tmp_path / "busy.snapshot.duckdb")
    shutil.copyfile(db, settings.snapshot_path)
    script = f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process now holds the live file
        source = reportpage.write(settings, tmp_path / "busy.html")
    finally:
        holder.communicate("")
    assert source == settings.snapshot_path
    assert "Most syndicated stories" in (tmp_path / "busy.html").read_text()


# The report's queries before migration 0011, over the views and whole tables: the reference the aggregates must match.
_BEFORE = {
    "report_top_entities": "select name, label, mentions, articles from entity_mentions_top limit $limit",
    "report_surges": """
        with bounds as (select max(day) as last_day from entity_surges)
        select s.name, s.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
        from entity_surges s, bounds b
        where s.day > b.last_day - 7 and s.mentions >= $min_mentions
        qualify row_number() over (partition by s.name, s.label order by s.surge_ratio desc, s.day desc) = 1
        order by surge_ratio desc, mentions desc, name limit $limit""",
    "report_feed_days": """
        with bounds as (select max(day) as last_day from articles_per_feed where articles > 0)
        select p.feed, p.day, p.articles from articles_per_feed p, bounds b
        where p.articles > 0 and p.day > b.last_day - cast($days as integer)""",
    "report_quality": """
        select coalesce(feed, 'seed corpus') as feed, count(*) as articles, count(access) as assessed,
               count(*) filter (where access = 'paywalled') as paywalled, count(*) filter (where is_teaser) as teasers,
               count(*) filter (where is_consent_page) as consent_pages,
               round(100.0 * count(*) filter (where access = 'paywalled') / nullif(count(access), 0), 1),
               round(100.0 * count(*) filter (where is_teaser) / nullif(count(is_teaser), 0), 1)
        from articles group by all limit $limit""",
    "report_syndication": "select title, url, is_seed, original_feed, copies, n_outlets, outlets, first_seen_at "
                          "from syndication limit $limit",
    "report_runs": """
        select h.run_id, h.flow, h.status, h.started_at, h.duration_s, h.feeds_ok, h.feeds_failed, h.articles_new,
               h.duplicates_exact + h.duplicates_near, h.message, r.checks_failed,
               (select count(*) from check_results c where c.run_id = h.run_id)
        from run_history h join runs r using (run_id) order by h.started_at desc limit $limit""",
    "report_feed_health": """
        select feed, state, consecutive_failures, last_success_at, last_attempt_at, last_outcome,
               coalesce(last_error, last_outcome_error) as error, fetches_7d, failures_7d from feed_health""",
    "report_checks": """
        with recent as (select run_id, started_at from runs order by started_at desc limit $limit)
        select c.run_id, c.check_name, c.offending_rows, c.sample, c.checked_at
        from check_results c join recent r using (run_id) where c.offending_rows > 0""",
}


def test_the_report_reads_the_same_figures_from_its_aggregates(demo_db: Path, tmp_path: Path) -> None:
    """Every section's rows, read from the aggregates (migration 0011), equal those the views over every row give,
    on the demo warehouse with a failed check recorded and a feed not fetched for a month."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("insert into check_results by name select run_id, 'made_up' as check_name, 3 as offending_rows, "
                     "'[]' as sample, now() as checked_at from runs limit 1")
        # A feed not fetched for a month: its latest outcome is older than the week the report reads.
        conn.execute("update feed_fetches set fetched_at = fetched_at - interval 30 day where feed = "
                     "(select min(feed) from feeds)")
        conn.execute("update feeds set last_fetch_at = last_fetch_at - interval 30 day where feed = "
                     "(select min(feed) from feeds)")
    params = {"limit": 1000, "min_mentions": 1, "days": 30}
    with duckdb.connect(str(db), read_only=True) as conn:
        for name, before in _BEFORE.items():
            used = {k: v for k, v in params.items() if f"${k}" in before}
            old = sorted(conn.execute(before, used).fetchall(), key=repr)
            if name == "report_syndication":  # read in two steps (reportpage.syndicated)
                new = sorted((tuple(r.values()) for r in reportpage.syndicated(conn, 1000)), key=repr)
            else:
                new = sorted(conn.execute(database.query(name), used).fetchall(), key=repr)
            assert new == old, name
            assert new, name  # a comparison of nothing would prove nothing
        before = ("select e.name, e.label, sum(ae.mentions) as mentions, count(*) as articles from articles a "
                  "join article_entities ae using (article_id) join entities e using (entity_id) "
                  "where a.run_id = $run_id group by e.name, e.label")
        tagged = 0
        for (run_id,) in conn.execute("select run_id from runs").fetchall():
            new = conn.execute(database.query("run_top_entities"), {"run_id": run_id, "limit": 1000}).fetchall()
            assert sorted(new) == sorted(conn.execute(before, {"run_id": run_id}).fetchall()), run_id
            tagged += len(new)
        assert tagged
        top = conn.execute(database.query("report_top_entities"), {"limit": 15}).fetchall()
        assert [r[2] for r in top] == sorted((r[2] for r in top), reverse=True) and len(top) == 15


def test_the_most_syndicated_stories_skip_originals_no_longer_stored(demo_db: Path, tmp_path: Path) -> None:
    """The report ranks the best few rows of story_copies first; when the originals of most of those are gone it
    ranks every row, so the list is the one the whole table gives."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    with duckdb.connect(str(db)) as conn:
        # Copies of eight more stored articles, the i-th article copied i + 2 times by two outlets.
        originals = [r[0] for r in conn.execute("select article_id from articles where not is_seed "
                                                "order by article_id limit 8").fetchall()]
        for i, original in enumerate(originals):
            conn.execute("insert into duplicates by name select 'https://copy.example/' || $i || '/' || k as url, "
                         "'outlet' || (k % 2) as feed, $a as duplicate_of, 'near' as method, 'test' as criterion, "
                         "0.9 as similarity, now() as seen_at, 'run' as run_id from range($n) t(k)",
                         {"i": i, "a": original, "n": i + 2})
        with database.transaction(conn):
            aggregates.recount_copies(conn, originals)
        ranked = [r[0] for r in conn.execute("select article_id from story_copies "
                                             "order by copies desc, first_seen_at, article_id").fetchall()]
        assert len(ranked) >= 6, ranked
        full = conn.execute(_BEFORE["report_syndication"], {"limit": 2}).fetchall()
        assert [tuple(r.values()) for r in reportpage.syndicated(conn, 2)] == full
        # The best 4 x 1 originals are taken away (as if deleted without their figures): the list starts at the 5th.
        conn.execute("delete from articles where article_id in (select unnest($ids))", {"ids": ranked[:4]})
        full = conn.execute(_BEFORE["report_syndication"], {"limit": 1}).fetchall()
        assert len(full) == 1
        assert [tuple(r.values()) for r in reportpage.syndicated(conn, 1)] == full
        assert conn.execute(database.query("report_syndication"), {"limit": 1, "ranked": 4}).fetchall() == []


def test_a_day_far_ahead_stored_earlier_ends_no_window(demo_db: Path, tmp_path: Path) -> None:
    """Rows of a day years ahead (stored before feeds' dates were checked against the fetch, or by hand) neither end
    the report's windows nor show in them: the week of surges and the days per feed are those without them."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    params = {"limit": 15, "min_mentions": 1, "days": 30}
    with duckdb.connect(str(db)) as conn:
        before = {name: conn.execute(database.query(name), {k: v for k, v in params.items() if f"${k}" in
                                                            database.query(name)}).fetchall()
                  for name in ("report_surges", "report_feed_days")}
        assert before["report_surges"] and before["report_feed_days"]
        conn.execute("insert into daily_feed_articles values (date '2099-01-01', 'Future Feed', 3, 0)")
        conn.execute("insert into daily_entity_mentions (day, entity_id, mentions, articles) "
                     "select date '2099-01-01', entity_id, 50, 3 from entities limit 5")
        after = {name: conn.execute(database.query(name), {k: v for k, v in params.items() if f"${k}" in
                                                           database.query(name)}).fetchall()
                 for name in ("report_surges", "report_feed_days")}
    assert after == before
    with duckdb.connect(str(db), read_only=True) as conn:
        page = reportpage.render(conn)
    assert "2099" not in page and "Future Feed" not in page


# report_surges as a RANGE window over every row of the 14 days (its form before the baseline became a join).
_SURGES_WINDOW = """
with bounds as (select max(day) as last_day from daily_entity_mentions),
recent as (
    select d.entity_id, d.day, d.day - date '1970-01-01' as n, d.mentions
    from daily_entity_mentions d, bounds b where d.day > b.last_day - 14
),
baseline as (
    select *, coalesce(sum(mentions) over (partition by entity_id order by n
                                           range between 7 preceding and 1 preceding), 0) / 7.0 as baseline_7d
    from recent
),
scored as (
    select s.entity_id, s.day, s.mentions, round(s.baseline_7d, 3) as baseline_7d,
           round((s.mentions + 1) / (s.baseline_7d + 1), 3) as surge_ratio
    from baseline s, bounds b
    where s.day > b.last_day - 7 and s.mentions >= $min_mentions
    qualify row_number() over (partition by s.entity_id order by surge_ratio desc, s.day desc) = 1
)
select e.name, e.label, s.day, s.mentions, s.baseline_7d, s.surge_ratio
from scored s join entities e using (entity_id)
order by surge_ratio desc, mentions desc, name
limit $limit"""


@pytest.mark.parametrize("seed", range(3))
def test_surges_with_the_baseline_as_a_join_equal_the_window(tmp_path: Path, seed: int) -> None:
    """Random daily mentions over three weeks, with gaps (days an entity was not mentioned) and ties: the report's
    surges, each baseline summed by a join on the entity, are those of a RANGE window over every row."""
    settings = WarehouseSettings(path=tmp_path / "wh.duckdb")
    database.ensure_ready(settings)
    with duckdb.connect(str(settings.path)) as conn:
        conn.execute("insert into entities (entity_id, name, label, first_seen_at) "
                     "select i, 'E' || lpad((i % 37)::varchar, 2, '0') || '-' || i, 'ORG', now() from range(300) t(i)")
        conn.execute("insert into daily_entity_mentions (day, entity_id, mentions, articles) "
                     "select date '2026-11-10' + d::integer, e, (hash(e * 31 + d + $seed) % 9)::integer + 1, 1 "
                     "from range(21) t(d), range(300) u(e) where hash(e * 7 + d * 13 + $seed) % 3 = 0",
                     {"seed": seed})
        aggregates.recount_baselines(conn)  # rows written without the loader
        for limit, least in ((12, 2), (500, 1), (500, 4)):
            params = {"limit": limit, "min_mentions": least}
            expected = conn.execute(_SURGES_WINDOW, params).fetchall()
            assert len(expected) > 10
            assert conn.execute(database.query("report_surges"), params).fetchall() == expected
