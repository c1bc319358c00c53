"""Shards: the feed split by host, stage-only shard runs, the one loader, and a fan-out on a real work pool.

Feeds and pages are written here and served from several loopback addresses (127.0.0.2, 127.0.0.3, ...), one
outlet per address; one story is syndicated to every outlet, so its copies sit in both shards. The work-pool
fan-out runs on both backends: a DuckDB file, and a DuckLake whose catalog is a real PostgreSQL (on a Unix socket).

Covers: flows.ops.fanout, flows.run.collect, flows.warehouse.runlock, flows.run.loader, flows.run.modes
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import write_config
from test_prefect_server import BIN, Server, prefect_server, wait_for  # noqa: F401 (a fixture)

from flows.core.settings import PROJECT_ROOT, FeedConfig, WarehouseSettings, load_settings
from flows.ops.localserver import LocalServer
from flows.run.collect import in_shard, parse_shard, shard_of
from flows.warehouse import checks, database
from flows.warehouse.runlock import run_lock

WORDS = ("council harbour budget river school bridge station market festival library hospital museum farmers "
         "drivers teachers nurses workers engineers residents tenants voters ministers mayor governor court "
         "judge police railway airport port factory mill bakery clinic stadium garden forest valley coast "
         "northern southern eastern western annual weekly record delayed approved rejected opened closed "
         "repaired expanded reviewed announced criticised welcomed funded planned").split()
STORIES = 3  # own stories per outlet, besides the syndicated one


def _text(seed: str, paragraphs: int = 6) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(12, 18))).capitalize() + "."
                     for _ in range(3)]
        out.append(" ".join(sentences))
    return out


def _page(title: str, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta property="article:published_time" content="2026-11-30T10:00:00Z"></head><body>'
            f"<nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}</article>"
            f"<footer>Contact us</footer></body></html>")


def _outlet(root: Path, name: str) -> None:
    """One outlet's folder: /feed.xml with its own stories and the syndicated one."""
    (root / "a").mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(STORIES):
        slug = f"{name}-{i}"
        (root / "a" / f"{slug}.html").write_text(_page(f"{name} story {i}", _text(slug)))
        items.append(slug)
    (root / "a" / "shared.html").write_text(_page("Syndicated wire story", _text("syndicated")))
    items.append("shared")
    entries = "".join(f"<item><title>{s}</title><link>{{{{BASE}}}}/a/{s}.html</link><guid>{{{{BASE}}}}/a/{s}"
                      f"</guid><pubDate>Mon, 30 Nov 2026 10:00:00 +0000</pubDate></item>" for s in items)
    (root / "feed.xml").write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
                                   f"<link>{{{{BASE}}}}/</link>{entries}</channel></rss>")


def pick_hosts(n_shards: int, per_shard: int) -> list[str]:
    """Loopback addresses, `per_shard` of them in each of `n_shards` shards (the split is by host)."""
    by_shard: dict[int, list[str]] = {k: [] for k in range(1, n_shards + 1)}
    for last in range(2, 250):
        host = f"127.0.0.{last}"
        k = shard_of(f"http://{host}:1/feed.xml", n_shards)
        if len(by_shard[k]) < per_shard:
            by_shard[k].append(host)
        if all(len(v) == per_shard for v in by_shard.values()):
            return [h for k in sorted(by_shard) for h in by_shard[k]]
    raise AssertionError("not enough loopback addresses")


@dataclass
class Hold:
    """One article page that answers only once released: a shard run stays mid-shard until the test says."""

    path: str = "/a/outlet0-1.html"  # outlet0 is in shard 1 of 2 (pick_hosts)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def hold() -> Hold:
    return Hold()


@pytest.fixture
def outlets(tmp_path: Path, hold: Hold) -> Iterator[list[LocalServer]]:
    """Four outlets, two per shard of 2, each on its own loopback address."""
    with ExitStack() as stack:
        servers: list[LocalServer] = []

        def held(handler: Any) -> None:
            hold.arrived.set()
            hold.release.wait(300)  # the test releases it; the bound only keeps a failed test from hanging
            servers[0]._serve_file(handler, hold.path)

        for i, host in enumerate(pick_hosts(2, 2)):
            root = tmp_path / "sites" / f"outlet{i}"
            _outlet(root, f"outlet{i}")
            routes = {hold.path: held} if i == 0 else None
            servers.append(stack.enter_context(LocalServer(root, host=host, routes=routes)))
        try:
            yield servers
        finally:
            hold.release.set()


def shard_config(tmp_path: Path, servers: list[LocalServer], *, catalog: str | None = None) -> Path:
    """One feed per outlet; no seed files (the loader would load the project's), two articles per batch.
    With `catalog`, the warehouse is a DuckLake with that catalog and its data under tmp_path/lake-files."""
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    feeds = "".join(f'[[feeds]]\nname = "outlet{i}"\nurl = "{s.url("/feed.xml")}"\n' for i, s in enumerate(servers))
    path = write_config(tmp_path, "[health]\nalert_after_failures = 99\n" + feeds)
    text = re.sub(r'seeds_dir = ".*"', f'seeds_dir = "{seeds}"\nbatch_size = 2', path.read_text())
    if catalog:
        lake = f'backend = "ducklake"\ncatalog = "{catalog}"\ndata_path = "{tmp_path / "lake-files"}"\n'
        text = text.replace("[warehouse]\n", "[warehouse]\n" + lake, 1)
    path.write_text(text)
    return path


def rows(db: Path | WarehouseSettings, sql: str) -> list[tuple[Any, ...]]:
    """A read-only query on a DuckDB file, or on the warehouse of the settings (a file or a lake)."""
    if isinstance(db, WarehouseSettings):
        with database.connect(db, read_only=True) as conn:
            return conn.execute(sql).fetchall()
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def assert_stored_once(db: Path | WarehouseSettings, outlets: int) -> None:
    """Every story once; the syndicated one stored once and its other copies recorded as duplicates."""
    assert rows(db, "select count(*), count(distinct url) from articles where url like '%/a/%'") == [
        (outlets * STORIES + 1, outlets * STORIES + 1)]
    shared = rows(db, "select article_id from articles where url like '%/a/shared.html'")
    assert len(shared) == 1
    dups = rows(db, "select url, duplicate_of from duplicates where url like '%/a/shared.html'")
    assert len(dups) == outlets - 1 and {d[1] for d in dups} == {shared[0][0]}


# --- the split --------------------------------------------------------------------------------------------------

def test_shard_assignment_is_stable_total_and_by_host() -> None:
    hosts = ["a.example", "b.example", "A.example", "c.example:8443", "d.example"]
    feeds = [FeedConfig(name=f"f{i}", url=f"https://{host}/section/{i}.xml") for i, host in enumerate(hosts * 8)]
    for n in (1, 2, 3, 7):
        parts = [in_shard(feeds, (k, n)) for k in range(1, n + 1)]
        names = sorted(f.name for part in parts for f in part)
        assert names == sorted(f.name for f in feeds), "every feed in exactly one shard"
        for host in ("a.example", "b.example", "c.example", "d.example"):  # any case, any port, any path
            shards = {k for k, part in enumerate(parts, 1) for f in part if host in f.url.lower()}
            assert len(shards) == 1, f"feeds of {host} split over shards {shards}"
    # Stable across processes, machines and releases (a fixed digest, not Python's salted hash()).
    assert [shard_of(u, 4) for u in ("https://www.bbc.co.uk/news/rss.xml", "https://www.theguardian.com/x",
                                     "https://feeds.npr.org/1004/rss.xml")] == [2, 1, 4]
    assert in_shard(feeds, None) == feeds
    assert parse_shard(" 2/4 ") == (2, 4)
    for bad in ("0/4", "5/4", "1", "a/b", "1/0", "", "1/2/3"):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


# --- stage-only shards and the loader, in process ---------------------------------------------------------------

def test_stage_only_shards_then_one_loader(prefect_harness: None, outlets: list[LocalServer], hold: Hold,
                                           tmp_path: Path) -> None:
    from flows.run.ingest import ingest
    from flows.run.loader import load

    hold.release.set()
    config = shard_config(tmp_path, outlets)
    settings = load_settings(config, env={})
    db = settings.warehouse.path
    # Shard 1 is "running" elsewhere: shard 2 still runs (per-shard lock), a second shard 1 does nothing.
    with run_lock(db, "shard-1-of-2") as mine:
        assert mine
        assert ingest(config=str(config), shard="1/2", stage_only=True)["status"] == "skipped"
        second = ingest(config=str(config), shard="2/2", stage_only=True)
    first = ingest(config=str(config), shard="1/2", stage_only=True)
    assert first["status"] == second["status"] == "staged"
    assert first["feeds_ok"] == second["feeds_ok"] == 2
    assert not db.exists(), "a stage-only run never creates or writes the warehouse"
    staged = sorted(p.name for p in settings.warehouse.staging_dir.iterdir())
    assert staged and staged == sorted(staged, key=lambda n: (n.split("-")[0], n.split("-")[1], n))

    done = load(config=str(config))
    assert done["status"] == "completed" and done["checks_failed"] == 0
    assert done["batches_loaded"] == len(staged)
    assert_stored_once(db, len(outlets))
    assert rows(db, "select flow, status from runs order by started_at") == [
        ("ingest", "completed"), ("ingest", "completed"), ("load", "completed")]
    assert rows(db, "select count(*) from feeds") == [(len(outlets),)]
    assert not list(settings.warehouse.staging_dir.iterdir())

    # A shard run staging right now has a `running` row the loader already loaded: not stale, not abandoned.
    with duckdb.connect(str(db)) as conn:
        conn.execute("insert into runs (run_id, flow, started_at, status) "
                     "values ('live-shard', 'ingest', now() - interval 1 hour, 'running')")
    with run_lock(db, "shard-2-of-2"):
        stale = {r.name: r for r in checks.run_and_store(settings.warehouse, checks.new_check_id()).results}
        assert stale["stale_running_runs"].skipped and not stale["stale_running_runs"].failed
        assert load(config=str(config))["status"] == "completed"
        assert rows(db, "select status from runs where run_id = 'live-shard'") == [("running",)]
    assert checks.run_and_store(settings.warehouse, checks.new_check_id()).failed  # now it is stale


def test_the_loader_stores_new_seed_files_before_the_staged_batches(prefect_harness: None, outlets: list[LocalServer],
                                                                    hold: Hold, tmp_path: Path) -> None:
    """A seed is the original of the shards' copies of it (issue 23): the loader stores new seed files before it
    loads what the shards staged, so every outlet's copy of the syndicated story is a duplicate of the seed."""
    from flows.run.ingest import ingest
    from flows.run.loader import load

    hold.release.set()
    config = shard_config(tmp_path, outlets)
    (tmp_path / "seeds" / "wire.txt").write_text("date 2026-11-30\n" + "\n\n".join(_text("syndicated")))
    db = load_settings(config, env={}).warehouse.path
    for k in (1, 2):
        assert ingest(config=str(config), shard=f"{k}/2", stage_only=True)["status"] == "staged"
    assert load(config=str(config))["status"] == "completed"
    [(seed_id,)] = rows(db, "select article_id from articles where url = 'seed:wire.txt'")
    assert rows(db, "select count(*) from articles where url like '%/a/shared.html'") == [(0,)]
    assert rows(db, "select count(*), min(duplicate_of), max(duplicate_of) from duplicates "
                    "where url like '%/a/shared.html'") == [(len(outlets), seed_id, seed_id)]


def test_fanout_summary_names_every_run_that_did_not_complete() -> None:
    from flows.ops.fanout import exit_status, summarise

    done = summarise({"2/12": "COMPLETED", "10/12": "COMPLETED", "1/12": "COMPLETED"}, "COMPLETED", "L")
    assert (done["status"], done["incomplete"], list(done["shards"])) == ("completed", [], ["1/12", "2/12", "10/12"])
    assert exit_status(done) == (0, None)
    crashed = summarise({"10/12": "CRASHED", "2/12": "COMPLETED", "3/12": "FAILED"}, "COMPLETED", "L")
    assert (crashed["status"], crashed["incomplete"]) == ("incomplete", ["3/12", "10/12"])
    assert exit_status(crashed) == (1, "fanout incomplete: shard 3/12 did not complete (FAILED); what it staged is "
                                       "loaded, the next fanout fetches its feeds again; shard 10/12 did not "
                                       "complete (CRASHED); what it staged is loaded, the next fanout fetches its "
                                       "feeds again")
    loader = summarise({"1/1": "COMPLETED"}, "FAILED", "run-9")
    assert loader["status"] == "incomplete"
    assert exit_status(loader) == (1, "fanout incomplete: the loader run run-9 ended FAILED; what is staged stays "
                                      "staged for the next load")


def test_fanout_command_exits_1_naming_the_shard(capsys: pytest.CaptureFixture) -> None:
    """The CLI's mapping of the fan-out's result (a real run needs a work pool: test_fanout_on_a_process_work_pool)."""
    from flows.cli.run_commands import fanout_report
    from flows.ops.fanout import summarise

    assert fanout_report(summarise({"1/2": "CRASHED", "2/2": "COMPLETED"}, "COMPLETED", "L")) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["fanout of 2 shards: incomplete; loader COMPLETED", "  shard 1/2: CRASHED",
                                "  shard 2/2: COMPLETED"]
    assert err.splitlines() == ["newsflow: fanout incomplete: shard 1/2 did not complete (CRASHED); what it staged "
                                "is loaded, the next fanout fetches its feeds again"]
    assert fanout_report(summarise({"1/2": "COMPLETED", "2/2": "COMPLETED"}, "COMPLETED", "L")) == 0
    out, err = capsys.readouterr()
    assert out.startswith("fanout of 2 shards: completed; loader COMPLETED") and err == ""


@pytest.mark.parametrize(("args", "api", "says"), [
    (["ingest", "--shard", "3/2"], None, "expected K/N with 1 <= K <= N"),
    (["ingest", "--shard", "two"], None, "expected K/N"),
    (["fanout", "--shards", "0"], None, "must be from 1 to 256"),
    (["fanout", "--shards", "2"], None, "fanout needs a Prefect API and a work pool"),
    (["fanout", "--shards", "2"], "http://127.0.0.1:9/api", "fanout needs a Prefect API: none answers at"),
])
def test_shard_commands_refuse_in_one_line(args: list[str], api: str | None, says: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PYTHONPATH": str(PROJECT_ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    if api:  # port 9 on loopback: nothing listens there
        env["PREFECT_API_URL"] = api
    done = subprocess.run([str(BIN / "newsflow"), *args, "--config", str(config)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "wh" / "test.duckdb").exists()


# --- a fan-out on a real process work pool ----------------------------------------------------------------------

def _run(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        code = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=300).returncode
    assert code == 0, f"{' '.join(cmd[:3])} failed: {log.read_text()[-3000:]}"


def _descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (from /proc: no psutil here)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _flow_run_pid(workers: list[subprocess.Popen[bytes]], flow_run_id: str) -> int | None:
    """The process a worker started for one flow run (the worker passes PREFECT__FLOW_RUN_ID to it)."""
    for worker in workers:
        for pid in _descendants(worker.pid):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in env:
                return pid
    return None


# One statement reads one snapshot: in it, no URL stored twice, no duplicate or entity row pointing at an article
# it cannot see, no URL both stored and a duplicate; and the counts, which a later read must never see go down.
CONSISTENT = """
select (select count(*) from articles), (select count(*) from duplicates),
       (select count(*) - count(distinct url) from articles)
       + (select count(*) from duplicates d anti join articles a on a.article_id = d.duplicate_of)
       + (select count(*) from duplicates d semi join articles a using (url))
       + (select count(*) from article_entities ae anti join articles a using (article_id))
"""


class Reader(threading.Thread):
    """A person querying while shards stage and the loader loads: every read must see a consistent warehouse.

    On a lake it keeps one session open throughout and queries the lake itself (no snapshot copy), as a reader on
    another machine would; on a file it opens per query what `database.reader` gives (the live file, or the
    snapshot while a load holds it), so counts are compared per file read.
    """

    def __init__(self, settings: WarehouseSettings) -> None:
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.reads, self.errors, self.last = 0, [], (0, 0)
        self.states: set[tuple[int, int]] = set()  # the (articles, duplicates) it saw, for the test's figures
        self._high: dict[Path, tuple[int, int]] = {}

    def _check(self, source: Path, conn: duckdb.DuckDBPyConnection) -> None:
        articles, dups, bad = conn.execute(CONSISTENT).fetchone()
        self.reads += 1
        high = self._high.get(source, (0, 0))
        if bad or articles < high[0] or dups < high[1]:
            self.errors.append((source.name, high, (articles, dups, bad)))
        self._high[source] = self.last = (articles, dups)
        self.states.add(self.last)

    def run(self) -> None:
        session = None
        try:
            while not self.stop.wait(0.3):  # pacing of the reader's own queries
                try:
                    if self.settings.is_lake:
                        if session is None:
                            opening = database.connect(self.settings, read_only=True, wait=0.2)
                            conn = opening.__enter__()
                            session = opening
                        self._check(self.settings.path, conn)
                    else:
                        with database.reader(self.settings, wait=0.2) as (path, conn):
                            self._check(path, conn)
                except (database.WarehouseError, duckdb.Error):
                    # No warehouse (or lake tables) yet, or the file and its snapshot both busy this instant.
                    if session is not None:
                        session.__exit__(None, None, None)
                        session = None
        finally:
            if session is not None:
                session.__exit__(None, None, None)


@pytest.mark.prefect_server
@pytest.mark.timeout(900)  # two fan-outs of three flow-run processes each, on a busy 2-core machine
@pytest.mark.parametrize("backend", ["file", "ducklake-postgres"])
def test_fanout_on_a_process_work_pool(prefect_server: Server, outlets: list[LocalServer], hold: Hold,  # noqa: F811
                                       tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    catalog = None
    if backend == "ducklake-postgres":  # the PostgreSQL server is stopped by its fixture, pass or fail
        catalog = "postgres:" + request.getfixturevalue("postgres").get_uri()
    config = shard_config(tmp_path, outlets, catalog=catalog)
    settings = load_settings(config, env={})
    db = settings.warehouse  # every check below reads the file, or the lake itself
    assert db.is_lake == bool(catalog)
    env = {**prefect_server.env, "PYTHONPATH": str(PROJECT_ROOT), "NEWSFLOW_ROOT": str(PROJECT_ROOT),
           "PYTHONUNBUFFERED": "1", "NEWSFLOW_PIPELINE__WORKERS": "1", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}
    log = tmp_path / "pool.log"
    client = prefect_server.client
    client.delete("/work_pools/newsflow")  # and its workers, left by an earlier variant on this server
    _run([str(BIN / "prefect"), "work-pool", "create", "newsflow", "--type", "process", "--overwrite"], env,
         tmp_path, log)
    # The deployments as prefect.yaml declares them (only these two: the others are scheduled).
    _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "ingest/shard", "--name", "load/newsflow"],
         env, PROJECT_ROOT, log)
    assert client.get("/deployments/name/load/newsflow").json()["global_concurrency_limit"]["limit"] == 1

    fanout = [str(BIN / "newsflow"), "fanout", "--shards", "2", "--config", str(config), "--timeout", "600"]
    # No worker on the pool yet: one line, exit 2.
    early = subprocess.run(fanout, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert early.returncode == 2 and "worker" in early.stderr and len(early.stderr.splitlines()) == 1, early.stderr

    workers = [subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "newsflow", "--name", f"w{i}"],
                                env=env, cwd=tmp_path, stdout=(tmp_path / f"worker{i}.log").open("w"),
                                stderr=subprocess.STDOUT, start_new_session=True) for i in (1, 2)]
    reader = Reader(settings.warehouse)
    try:
        wait_for(lambda: client.get("/work_pools/newsflow").json()["status"] == "READY", "a worker on the pool")
        reader.start()
        # Fan-out 1: shard 1 is killed while it waits for one of its pages.
        first = subprocess.Popen(fanout, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        wait_for(hold.arrived.is_set, "shard 1 to reach its held page", deadline=300)

        def shard1_pid() -> tuple[str, int] | None:
            runs = client.post("/flow_runs/filter", json={"flow_runs": {
                "name": {"any_": ["shard-1-of-2"]}, "state": {"type": {"any_": ["RUNNING"]}}}}).json()
            for run in runs:
                pid = _flow_run_pid(workers, run["id"])
                if pid:
                    return run["id"], pid
            return None

        killed_run, pid = wait_for(shard1_pid, "the process of shard 1's flow run")
        for p in [pid, *_descendants(pid)]:
            os.kill(p, signal.SIGKILL)
        hold.release.set()
        out, _ = first.communicate(timeout=600)
        assert first.returncode == 1, out  # a shard did not complete: named, after the loader loaded its batches
        assert "shard 1/2: CRASHED" in out and "shard 2/2: COMPLETED" in out, out
        assert "newsflow: fanout incomplete: shard 1/2 did not complete (CRASHED)" in out, out
        assert client.get(f"/flow_runs/{killed_run}").json()["state"]["type"] == "CRASHED"
        # What shard 1 staged before it died was loaded; its run is marked abandoned, nothing is left staged.
        assert rows(db, f"select status from runs where run_id = '{killed_run}'") == [("abandoned",)]
        assert not staging_left(settings)

        # Fan-out 2 completes shard 1: every story once, the syndicated one's copies in both shards duplicates.
        started = time.monotonic()
        second = subprocess.run(fanout, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        print(f"\n[figure] {backend}: fan-out of 2 shards + load, {len(outlets) * (STORIES + 1)} pages: "
              f"{time.monotonic() - started:.1f} s")
        assert second.returncode == 0 and "fanout of 2 shards: completed" in second.stdout, (
            second.stdout + second.stderr[-4000:]
            + repr(rows(db, "select run_id, status, message from runs where flow = 'load' order by started_at")))
        assert_stored_once(db, len(outlets))
        # The checks ran after each load, the second one with every invariant holding.
        assert rows(db, "select count(*), sum(offending_rows) from check_results where run_id = "
                        "(select max_by(run_id, started_at) from runs where flow = 'load')") == [
            (len(list((PROJECT_ROOT / "warehouse" / "checks").glob("*.sql"))), 0)]
        assert not staging_left(settings)
        final = rows(db, "select count(*), (select count(*) from duplicates) from articles")[0]
        wait_for(lambda: reader.last == final, f"the reader to see the final {final} (articles, duplicates)")
    finally:
        reader.stop.set()
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
    reader.join(timeout=10)
    print(f"[figure] {backend}: the reader made {reader.reads} reads and saw {len(reader.states)} states "
          f"{sorted(reader.states)}")
    assert reader.reads > 0 and not reader.errors, reader.errors


def staging_left(settings: Any) -> list[str]:
    folder = settings.warehouse.staging_dir
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
