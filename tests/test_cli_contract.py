"""The command-line contract, case by case through the real `newsflow` entry point (flows.cli.main in-process):
a user error is one line on stderr and exit 2 (an unexpected one exit 1), nothing is run first, and no file is
created, changed or deleted. Each case is a bad input a user once met a traceback, a silent default or a lost
file with.

Covers: flows.cli.entry, flows.cli.__main__, flows.cli.arguments, flows.cli.common, flows.cli.read_commands,
Covers: flows.cli.run_commands, flows.core.owned, flows.ops.schedule
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flows.run.ingest  # noqa: F401 - Prefect binds its log handler to the stderr of its import: not a capsys one
from flows.cli import main
from flows.core.settings import PROJECT_ROOT, WarehouseSettings
from flows.ops import demo
from flows.warehouse import database

FEEDS = """
[[feeds]]
name = "harbour"
url = "http://127.0.0.1:9/harbour.xml"
tags = ["local", "world"]

[[feeds]]
name = "valley"
url = "http://127.0.0.1:9/valley.xml"
tags = ["local"]
"""


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty but real newsflow warehouse (every migration applied), copied into each case."""
    db = tmp_path_factory.mktemp("contract") / "built.duckdb"
    assert database.ensure_ready(WarehouseSettings(path=db, staging_dir=db.parent / "s",
                                                    snapshot_path=db.parent / "snap.duckdb"))
    return db


@dataclass
class Env:
    """One case's folder: a loopback-only config, a newsflow warehouse, and helpers to make other files."""
    tmp: Path
    built: Path
    busy_port: int = 0  # a loopback port something else listens on
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.tmp / "newsflow.toml"
        # The default warehouse is in tmp too, so a case that forgets --warehouse cannot reach the project's.
        db = self.tmp / "default.duckdb"
        self.config.write_text(f'[warehouse]\npath = "{db}"\nstaging_dir = "{self.tmp / "staging"}"\n'
                               f'snapshot_path = "{self.tmp / "snap.duckdb"}"\n'
                               f'[pipeline]\nworkers = 1\nseeds_dir = "{self.tmp / "seeds"}"\n' + FEEDS)
        (self.tmp / "seeds").mkdir()

    def p(self, name: str) -> str:
        return str(self.tmp / name)

    def warehouse(self, name: str = "wh.duckdb") -> str:
        shutil.copyfile(self.built, self.tmp / name)
        return self.p(name)

    def foreign(self, name: str = "other.duckdb") -> str:
        """Somebody else's DuckDB file: one table of their own, no schema_migrations."""
        with duckdb.connect(self.p(name)) as conn:
            conn.execute("create table measurements as select range as id from range(3)")
        return self.p(name)

    def file(self, name: str, text: str = "not a database\n") -> str:
        (self.tmp / name).write_text(text)
        return self.p(name)


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Env], list[str]]
    says: str  # a fragment of the stderr line
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    debug: bool = False  # the traceback is asked for: stderr has it, then the one line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _sql(e: Env, query: str, wh: str | None = None) -> list[str]:
    return ["sql", "--config", str(e.config), "--warehouse", e.warehouse() if wh is None else wh, query]


def _broken(e: Env) -> str:
    """A file that claims to be a warehouse (schema_migrations) but has none of its tables."""
    with duckdb.connect(e.p("broken.duckdb")) as conn:
        conn.execute("create table schema_migrations (version integer, name varchar, applied_at timestamptz)")
    return e.p("broken.duckdb")


def _real_feeds(e: Env) -> str:
    """A newsflow warehouse holding a feed from beyond loopback: real data, not the demo's."""
    wh = e.warehouse("real.duckdb")
    with duckdb.connect(wh) as conn:
        conn.execute("insert into feeds (feed, url, configured_url) values ('BBC', 'https://bbc.example/rss', "
                     "'https://bbc.example/rss')")
    return wh


CASES = [
    # Files that are not ours are never deleted, migrated or created.
    Case("demo-fresh-deletes-only-its-own", lambda e: ["demo", "--fresh", "--warehouse", e.warehouse("main.duckdb")],
         "not made by `newsflow demo`"),
    Case("demo-fresh-on-a-text-file", lambda e: ["demo", "--fresh", "--warehouse", e.file("notes.duckdb")],
         "not a newsflow warehouse"),
    Case("demo-into-a-real-warehouse", lambda e: ["demo", "--warehouse", _real_feeds(e)], "beyond 127.0.0.1"),
    Case("reprocess-foreign-duckdb", lambda e: ["reprocess", "--config", str(e.config), "--warehouse", e.foreign()],
         "not a newsflow warehouse"),
    Case("reprocess-missing-file", lambda e: ["reprocess", "--config", str(e.config), "--warehouse",
                                              e.p("typo.duckdb")], "no warehouse yet"),
    Case("maintain-foreign-duckdb", lambda e: ["maintain", "--config", str(e.config), "--warehouse", e.foreign()],
         "not a newsflow warehouse"),
    Case("maintain-missing-file", lambda e: ["maintain", "--config", str(e.config), "--warehouse",
                                             e.p("typo.duckdb"), "--dry-run"], "no warehouse yet"),
    Case("maintain-unknown-step", lambda e: ["maintain", "--config", str(e.config), "--step", "vacuum"],
         "invalid choice: 'vacuum'"),
    Case("ingest-foreign-duckdb", lambda e: ["ingest", "--config", str(e.config), "--warehouse", e.foreign()],
         "not a newsflow warehouse"),
    Case("status-foreign-duckdb", lambda e: ["status", "--config", str(e.config), "--warehouse", e.foreign()],
         "not a newsflow warehouse"),
    Case("sql-foreign-duckdb", lambda e: _sql(e, "select 1", e.foreign()), "not a newsflow warehouse"),
    Case("export-text-file", lambda e: ["export", "--config", str(e.config), "--warehouse", e.file("x.duckdb"),
                                        "--out", e.p("out")], "not a newsflow warehouse"),
    Case("sql-empty-warehouse-flag", lambda e: _sql(e, "select 1", ""), "--warehouse: must not be empty"),
    # Queries read the warehouse and write nothing.
    Case("sql-copy-to", lambda e: _sql(e, f"copy (select 1) to '{e.p('leak.csv')}'"), "read-only"),
    Case("sql-reads-other-files", lambda e: _sql(e, f"select * from read_csv('{e.file('secret.csv')}')"),
         "file system operations are disabled"),
    Case("export-query-copy-to", lambda e: ["export", "--config", str(e.config), "--warehouse", e.warehouse(),
                                            "--query", f"copy (select 1) to '{e.p('leak.csv')}'",
                                            "--out", e.p("out")], "read-only"),
    Case("export-name-escapes-out", lambda e: ["export", "--warehouse", e.warehouse(), "--query", "select 1",
                                               "--name", "../../x", "--out", e.p("out/a")], "not a plain file name"),
    # User errors are one line, not a traceback.
    Case("sql-invalid", lambda e: _sql(e, "selec 1 frm articles"), "Parser Error"),
    Case("sql-missing-at-file", lambda e: _sql(e, f"@{e.p('nope.sql')}"), "cannot read the query file"),
    Case("export-unwritable-out", lambda e: ["export", "--config", str(e.config), "--warehouse", e.warehouse(),
                                             "runs", "--out", e.file("blocker") + "/sub"], "Not a directory"),
    Case("status-broken-warehouse", lambda e: ["status", "--config", str(e.config), "--warehouse", _broken(e)],
         "unexpected CatalogException", code=1),
    Case("env-value-of-wrong-type", lambda e: _sql(e, "select 1"), "NEWSFLOW_FETCH__READ_TIMEOUT='abc'",
         env={"NEWSFLOW_FETCH__READ_TIMEOUT": "abc"}),
    Case("env-sets-the-feed-list", lambda e: ["status", "--config", str(e.config), "--warehouse", e.warehouse()],
         "NEWSFLOW_FEEDS__URL", env={"NEWSFLOW_FEEDS__URL": "x"}),
    Case("unknown-spacy-pipeline", lambda e: ["reprocess", "--config", str(e.config), "--warehouse", e.warehouse(),
                                              "--step", "entities"],
         "spaCy pipeline 'nf_no_such_model' (for 'en') is not installed",
         env={"NEWSFLOW_ENTITIES__PIPELINE": "nf_no_such_model"}),
    Case("max-articles-negative", lambda e: ["ingest", "--config", str(e.config), "--max-articles", "-1"],
         "--max-articles: must be from 0 to 1000"),
    Case("batch-size-zero", lambda e: ["reprocess", "--config", str(e.config), "--batch-size", "0"],
         "--batch-size: must be from 1 to 10000"),
    Case("since-not-a-date", lambda e: ["ingest", "--config", str(e.config), "--since", "yesterday"],
         "is not a date"),
    Case("port-out-of-range", lambda e: ["demo", "--port", "70000", "--warehouse", e.p("d.duckdb")],
         "--port: must be from 0 to 65535"),
    Case("demo-port-in-use", lambda e: ["demo", "--port", str(e.busy_port), "--warehouse", e.p("d.duckdb")],
         "is in use"),
    Case("unknown-tag", lambda e: ["ingest", "--config", str(e.config), "--warehouse", e.p("new.duckdb"),
                                   "--tag", "nosuchtag"], "unknown tag(s): nosuchtag (the config's feeds have: "
                                                          "local, world)"),
    Case("unknown-feed", lambda e: ["ingest", "--config", str(e.config), "--warehouse", e.p("new.duckdb"),
                                    "--feed", "nosuchfeed"], "(the config has: harbour, valley)"),
    # restore: a backup is checked before anything is written; someone's file is never replaced.
    Case("restore-not-a-backup", lambda e: ["restore", "--config", str(e.config), "--warehouse", e.p("new.duckdb"),
                                            "--from", _folder(e, "notabackup")], "not a newsflow backup"),
    Case("restore-over-a-warehouse", lambda e: ["restore", "--config", str(e.config), "--warehouse",
                                                e.warehouse("live.duckdb"), "--from", _backup(e)],
         "a warehouse is there; restoring replaces it: add --force to do so"),
    Case("restore-over-a-foreign-duckdb-even-forced",
         lambda e: ["restore", "--config", str(e.config), "--warehouse", e.foreign(), "--from", _backup(e),
                    "--force"], "not a newsflow warehouse"),
    Case("restore-missing-folder", lambda e: ["restore", "--config", str(e.config), "--from", e.p("nowhere")],
         "not a newsflow backup"),
    # --debug and NEWSFLOW_DEBUG=1 add the traceback.
    Case("debug-flag", lambda e: ["--debug", "sql", "--warehouse", e.p("none.duckdb"), "select 1"],
         "no warehouse yet", debug=True),
    Case("debug-env", lambda e: ["status", "--warehouse", e.foreign()], "not a newsflow warehouse",
         env={"NEWSFLOW_DEBUG": "1"}, debug=True),
]


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under root with a digest of its content: any creation, change or deletion shows."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_user_error_is_one_line_and_touches_nothing(case: Case, built_warehouse: Path, tmp_path: Path,
                                                      busy_port: int, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("NEWSFLOW_CONFIG", "NEWSFLOW_WAREHOUSE", "NEWSFLOW_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    argv = case.argv(Env(tmp_path, built_warehouse, busy_port))
    before = _tree(tmp_path)
    code = main(argv)
    after = _tree(tmp_path)
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == case.code, err
    if case.debug:
        assert lines[0].startswith("Traceback"), err
    else:
        assert len(lines) == 1, err
    assert lines[-1].startswith("newsflow: ") and case.says in lines[-1], err
    assert after == before, "the command created, changed or deleted a file"


def test_sql_still_reads_the_raw_archives_beside_the_warehouse(built_warehouse: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """External access is off for queries, except reading the warehouse's own <stem>.raw/ folder (docs/schema.md
    shows such a query)."""
    db = tmp_path / "wh.duckdb"
    shutil.copyfile(built_warehouse, db)
    day = tmp_path / "wh.raw" / "2026-11-30"
    day.mkdir(parents=True)
    pq.write_table(pa.table({"url": ["http://127.0.0.1/a", "http://127.0.0.1/b"]}), day / "batch.parquet")
    code = main(["sql", "--warehouse", str(db), "--format", "csv",
                 f"select count(*) as n from read_parquet('{tmp_path}/wh.raw/**/*.parquet')"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines() == ["n", "2"]


def test_export_writes_inside_out_with_file_access_off(built_warehouse: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "wh.duckdb"
    shutil.copyfile(built_warehouse, db)
    code = main(["export", "--warehouse", str(db), "--query", "select 41 + 1 as answer", "--name", "q",
                 "--format", "csv", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "q.csv").read_text().split() == ["answer", "42"]


def test_demo_fresh_removes_a_demo_warehouse_and_what_it_wrote(built_warehouse: Path, tmp_path: Path) -> None:
    """What `newsflow demo --fresh` deletes: a marked warehouse with loopback data only, and its sidecars."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(built_warehouse, db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("insert into feeds (feed, url, configured_url) values ('h', 'http://127.0.0.1:8765/h.xml', "
                     "'http://127.0.0.1:8765/h.xml')")
    (tmp_path / "demo.staging").mkdir()
    (tmp_path / "demo.staging" / "batch.parquet").write_bytes(b"PAR1")
    with pytest.raises(database.WarehouseError, match="not made by"):
        demo.check_target(db, fresh=True)
    demo.mark(db)
    demo.check_target(db, fresh=True)
    demo.remove(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_demo_fresh_beside_a_missing_warehouse_deletes_nothing(tmp_path: Path) -> None:
    """With no warehouse (and so no marker) there is nothing the demo made: `photos.raw/`, `photos.staging/` and
    `photos.snapshot.duckdb` beside a missing `photos.duckdb` are someone's, and `--fresh` deleted them."""
    db = tmp_path / "photos.duckdb"
    (tmp_path / "photos.raw").mkdir()
    (tmp_path / "photos.raw" / "holiday.jpg").write_bytes(b"\xff\xd8 a photo")
    (tmp_path / "photos.staging").mkdir()
    (tmp_path / "photos.snapshot.duckdb").write_text("notes")
    demo.check_target(db, fresh=True)
    demo.remove(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos.raw", "photos.snapshot.duckdb", "photos.staging"]
    assert (tmp_path / "photos.raw" / "holiday.jpg").read_bytes() == b"\xff\xd8 a photo"


@pytest.mark.parametrize("debug", [False, True])
def test_a_run_that_fails_is_one_line_without_prefect_s_traceback(tmp_path: Path, prefect_harness: None,
                                                                  debug: bool) -> None:
    """Prefect's engine logs a failed task and flow run with their tracebacks on the console; the README promises
    one line unless --debug. Here the staging folder's parent is a file: every batch fails to stage."""
    from prefect.settings import get_current_settings

    (tmp_path / "afile").write_text("x")
    config = tmp_path / "c.toml"
    config.write_text(f'[warehouse]\npath = "{tmp_path / "w.duckdb"}"\nstaging_dir = "{tmp_path / "afile" / "st"}"\n'
                      f'[pipeline]\nworkers = 1\nseeds_dir = "{PROJECT_ROOT / "seeds"}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *(["--debug"] if debug else []), "seeds", "--config", str(config)],
        capture_output=True, text=True, timeout=240, cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.rstrip().endswith("Not a directory: '" + str(tmp_path / "afile" / "st")) or \
        "newsflow: [Errno 20] Not a directory" in proc.stderr, proc.stderr[-3000:]
    assert ("Traceback" in proc.stderr) == debug, proc.stderr[-3000:]
    assert "Encountered exception during execution" in proc.stderr  # Prefect's line stays, its traceback does not


def test_a_seed_file_with_a_byte_order_mark_loads(tmp_path: Path, prefect_harness: None) -> None:
    """Windows editors save UTF-8 with a BOM; `newsflow seeds` must not call such a file headerless. A subprocess
    (on the session's Prefect API): Prefect's log handler keeps the stderr of whichever test imported it first."""
    from prefect.settings import get_current_settings

    env = Env(tmp_path, tmp_path / "unused")
    (tmp_path / "seeds" / "bom.txt").write_bytes(
        "\ufeffdate 2026-11-02\nThe harbour board met on Monday to agree the new tariff.\n".encode())
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "seeds", "--config", str(env.config), "--warehouse", env.p("s.duckdb")],
        capture_output=True, text=True, timeout=240, cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "NEWSFLOW_PIPELINE__WORKERS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 seed files loaded, 0 skipped" in proc.stdout


# ------------------------------------------------------------------------------------------------ write guards
# Issue 20, cases 1-4, 7, 11, 14 and 17 (export): the query guard (flows/warehouse/queryguard.py) and the write
# guard (flows/core/owned.py). Every row goes through the same assertion as CASES: exit 2, one line, and the
# case's folder byte for byte as it was.

RAW_DAY = "wh.raw/2026-11-30"


def _with_raw(e: Env) -> str:
    """A warehouse wh.duckdb with one day of raw archive beside it, as ingest leaves it."""
    wh = e.warehouse()
    (e.tmp / RAW_DAY).mkdir(parents=True)
    pq.write_table(pa.table({"url": ["http://127.0.0.1/a"], "html": [b"\x00"]}), e.tmp / RAW_DAY / "b1.parquet")
    return wh


def _fill(e: Env, text: str) -> str:
    return text.format(raw=e.p("wh.raw"), day=e.p(RAW_DAY), tmp=e.tmp)


def _sql_raw(query: str) -> Callable[[Env], list[str]]:
    """`newsflow sql QUERY` on a warehouse with a raw archive; {raw}, {day} and {tmp} in QUERY are its folders."""
    return lambda e: _sql(e, _fill(e, query), _with_raw(e))


def _export_raw(*args: str) -> Callable[[Env], list[str]]:
    return lambda e: ["export", "--config", str(e.config), "--warehouse", _with_raw(e), *(_fill(e, a) for a in args)]


def _report_raw(out: str) -> Callable[[Env], list[str]]:
    return lambda e: ["report", "--config", str(e.config), "--warehouse", _with_raw(e), "--out", _fill(e, out)]


def _html_path_config(e: Env, page: str) -> str:
    """The case's config with `[report] html_path` set to `page` ({tmp} filled in)."""
    return e.file("report.toml", e.config.read_text() + f'[report]\nhtml_path = "{_fill(e, page)}"\n')


def _folder(e: Env, name: str) -> str:
    (e.tmp / name).mkdir()
    return e.p(name)


def _backup(e: Env) -> str:
    """A `newsflow backup` of the case's warehouse in {tmp}/bk (made before the case's files are compared)."""
    from flows.core.settings import load_settings
    from flows.warehouse import backup

    backup.backup(load_settings(e.config, warehouse=e.warehouse("src.duckdb"), env={}), e.tmp / "bk")
    return e.p("bk")


def _full_folder(e: Env) -> str:
    (e.tmp / "full").mkdir()
    (e.tmp / "full" / "notes.txt").write_text("mine\n")
    return e.p("full")


def _big_query_file(e: Env) -> str:
    return e.file("big.sql", "select 1 " + " " * (1 << 20) + "\n")


_COPY_OVER_DAY = "EXPLAIN ANALYZE COPY (select 1 as a) TO '{day}' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)"
GUARD_CASES = [
    # 1. Queries read: nothing under EXPLAIN ANALYZE, in a later statement, or in a table function writes.
    Case("guard-sql-explain-analyze-copy-over-a-raw-day", _sql_raw(_COPY_OVER_DAY), "COPY statements cannot run"),
    Case("guard-sql-explain-analyze-copy-over-an-archive-file",
         _sql_raw("explain analyze copy (select 1 as a) to '{day}/b1.parquet' (format parquet)"), "read-only: COPY"),
    Case("guard-sql-explain-analyze-copy-text-into-raw",
         _sql_raw("explain analyze copy (select 'x' as a) to '{raw}/notes.txt' (format csv)"), "read-only: COPY"),
    Case("guard-sql-explain-options-copy", _sql_raw("explain (analyze) copy (select 1) to '{raw}/x.csv'"),
         "read-only: COPY"),
    Case("guard-sql-call-enable-logging-into-raw",
         _sql_raw("CALL enable_logging(storage='file', storage_path='{raw}/logs')"), "enable_logging() cannot run"),
    Case("guard-sql-call-enable-logging-outside-aborted-the-process",
         _sql_raw("CALL enable_logging(storage='file', storage_path='{tmp}/logs')"), "enable_logging() cannot run"),
    Case("guard-sql-select-from-enable-logging",
         _sql_raw("select * from (select 1) join enable_logging(storage='file', storage_path='{raw}/l') on true"),
         "enable_logging() cannot run"),
    Case("guard-sql-copy-in-a-second-statement", _sql_raw("select 1; copy (select 1) to '{raw}/x.csv'"),
         "read-only: COPY"),
    Case("guard-sql-query-table-function", _sql_raw("select * from query('copy (select 1) to ''{raw}/x.csv''')"),
         "query() cannot run"),
    Case("guard-sql-attach-in-raw", _sql_raw("attach '{raw}/new.duckdb' as n"), "read-only: ATTACH"),
    Case("guard-sql-pragma-profiling-output", _sql_raw("pragma profiling_output='{raw}/p.txt'"), "read-only: SET"),
    Case("guard-sql-set-allowed-directories", _sql_raw("set allowed_directories = ['/']"), "read-only: SET"),
    Case("guard-sql-nextval-in-a-cte", _sql_raw("with s as (select nextval('seq') as n) select * from s"),
         "nextval() cannot run"),
    Case("guard-export-query-explain-analyze-copy",
         _export_raw("--query", _COPY_OVER_DAY, "--out", "{tmp}/out"), "COPY statements cannot run"),
    # 2. `export --out` never replaces the warehouse, a file of its own, or a file that is not an earlier export.
    Case("guard-export-query-over-the-warehouse",
         _export_raw("--query", "select 1 as a", "--out", "{tmp}/wh.duckdb"), "is the warehouse wh.duckdb"),
    Case("guard-export-query-over-a-text-file",
         lambda e: _export_raw("--query", "select 1 as a", "--out", e.file("notes.txt"))(e),
         "exists and is not an earlier export of these columns (parquet); remove it or choose another path"),
    Case("guard-export-csv-over-a-text-file",
         lambda e: _export_raw("--query", "select 1 as a", "--format", "csv", "--out", e.file("notes.csv"))(e),
         "exists and is not an earlier export of these columns (csv)"),
    Case("guard-export-query-over-a-raw-archive-file",
         _export_raw("--query", "select 1 as a", "--out", "{day}/b1.parquet"), "raw archive folder"),
    Case("guard-export-tables-into-the-raw-folder", _export_raw("runs", "--out", "{raw}"), "raw archive folder"),
    Case("guard-export-query-into-the-keys-cache",
         _export_raw("--query", "select 1 as a", "--out", "{tmp}/wh.duckdb.keys/q.parquet"),
         "a file of the warehouse wh.duckdb (wh.duckdb.*)"),
    Case("guard-export-query-over-the-snapshot",
         _export_raw("--query", "select 1 as a", "--out", "{tmp}/wh.snapshot.duckdb"), "the warehouse snapshot"),
    Case("guard-export-query-over-the-search-index",
         _export_raw("--query", "select 1 as a", "--out", "{tmp}/wh.search.duckdb"), "search index"),
    Case("guard-report-into-the-search-lock",
         _report_raw("{tmp}/wh.search.duckdb.lock"), "search index"),
    Case("guard-report-into-the-search-segments",
         _report_raw("{tmp}/wh.search-segments/s.duckdb"), "search index"),
    Case("guard-export-query-into-the-seeds-folder",
         _export_raw("--query", "select 1 as a", "--out", "{tmp}/seeds/q.parquet"), "the seeds folder"),
    Case("guard-export-tables-out-is-a-file", lambda e: _export_raw("runs", "--out", e.file("flat"))(e),
         "is not a folder"),
    # 3. `report --out` writes a new file or replaces an earlier report page, nothing else.
    Case("guard-report-over-the-warehouse", _report_raw("{tmp}/wh.duckdb"), "is the warehouse wh.duckdb"),
    Case("guard-report-over-a-text-file", lambda e: _report_raw(e.file("notes.html"))(e),
         "exists and is not a newsflow report page; remove it or choose another path"),
    Case("guard-report-over-a-raw-archive-file", _report_raw("{day}/b1.parquet"), "raw archive folder"),
    Case("guard-report-into-the-staging-folder", _report_raw("{tmp}/wh.staging/r.html"), "staging folder"),
    # 4. `[report] html_path` on the warehouse is a config error of every command, before any run.
    Case("guard-ingest-html-path-is-the-warehouse",
         lambda e: ["ingest", "--config", _html_path_config(e, "{tmp}/wh.duckdb"), "--warehouse", e.warehouse()],
         "[report] html_path: "),
    Case("guard-load-html-path-is-the-wal",
         lambda e: ["load", "--config", _html_path_config(e, "{tmp}/wh.duckdb.wal"), "--warehouse", e.warehouse()],
         "a file of the warehouse wh.duckdb"),
    Case("guard-status-html-path-is-a-folder",
         lambda e: ["status", "--config", _html_path_config(e, "{tmp}/seeds"), "--warehouse", e.warehouse()],
         "the seeds folder"),
    # `backup --out` is a new or empty folder outside everything the warehouse owns.
    Case("guard-backup-into-the-raw-folder",
         lambda e: ["backup", "--config", str(e.config), "--warehouse", _with_raw(e), "--out", _fill(e, "{raw}/b")],
         "inside the warehouse's raw archive folder"),
    Case("guard-backup-into-the-keys-cache",
         lambda e: ["backup", "--config", str(e.config), "--warehouse", e.warehouse(), "--out",
                    e.p("wh.duckdb.keys/b")], "a file of the warehouse wh.duckdb (wh.duckdb.*)"),
    Case("guard-backup-over-a-text-file",
         lambda e: ["backup", "--config", str(e.config), "--warehouse", e.warehouse(), "--out", e.file("notes.txt")],
         "exists and is not a folder"),
    Case("guard-backup-into-a-folder-with-files",
         lambda e: ["backup", "--config", str(e.config), "--warehouse", e.warehouse(), "--out", _full_folder(e)],
         "the folder is not empty"),
    # 11. A query file is a regular file of at most 1 MiB.
    Case("guard-sql-query-file-is-a-device", lambda e: _sql(e, "@/dev/urandom"), "not a regular file"),
    Case("guard-sql-query-file-is-a-folder", lambda e: _sql(e, f"@{e.tmp}"), "it is a folder"),
    Case("guard-sql-query-file-too-large", lambda e: _sql(e, "@" + _big_query_file(e)), "larger than 1 MiB"),
    Case("guard-export-query-file-is-a-device", _export_raw("--query", "@/dev/zero", "--out", "{tmp}/o.parquet"),
         "not a regular file"),
    # 14. A folder as the report page: refused before the page is rendered, no temp file left.
    Case("guard-report-on-a-folder", _report_raw("{tmp}/seeds"), "the seeds folder"),
    Case("guard-report-on-a-folder-of-its-own", lambda e: _report_raw(_folder(e, "site"))(e),
         "is a folder; give a file path"),
    # 17. A failed export leaves nothing, not even the folders it made for --out.
    Case("guard-export-failing-query-leaves-no-folder",
         _export_raw("--query", "select error('boom') as a", "--out", "{tmp}/new/deeper/q.parquet"), "boom"),
]


@pytest.mark.parametrize("case", GUARD_CASES, ids=[c.id for c in GUARD_CASES])
def test_a_guarded_write_is_one_line_and_touches_nothing(case: Case, built_warehouse: Path, tmp_path: Path,
                                                         busy_port: int, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    test_a_user_error_is_one_line_and_touches_nothing(case, built_warehouse, tmp_path, busy_port, monkeypatch,
                                                      capsys)


def test_guard_export_keeps_a_table_named_with_a_path_inside_out(built_warehouse: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Case 7: a table named "/abs/path" or ".." is exported inside --out, its name escaped; nothing lands outside."""
    db = Path(shutil.copyfile(built_warehouse, tmp_path / "wh.duckdb"))
    outside = tmp_path / "outside" / "evil"
    with duckdb.connect(str(db)) as conn:
        conn.execute(f'create table "{outside}" as select 1 as a')
        conn.execute('create table ".." as select 2 as b')
        conn.execute('create table "a%2Fb" as select 3 as c')
    out = tmp_path / "out"
    code = main(["export", "--warehouse", str(db), "--out", str(out), str(outside), "..", "a%2Fb", "runs"])
    assert code == 0, capsys.readouterr().err
    assert not (tmp_path / "outside").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "wh.duckdb"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([str(outside).replace("/", "%2F") + ".parquet", "%2E..parquet", "a%252Fb.parquet",
                            "runs.parquet"])
    assert pq.read_table(out / "%2E..parquet").column_names == ["b"]


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_guard_report_never_replaces_a_device(device: str, built_warehouse: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Case 3: as root, a temp file renamed over /dev/null made it a regular file; now it is refused first."""
    db = shutil.copyfile(built_warehouse, tmp_path / "wh.duckdb")
    before = {p.name for p in Path("/dev").iterdir()}
    assert main(["report", "--warehouse", str(db), "--out", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file" in err, err
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert {p.name for p in Path("/dev").iterdir()} == before  # no temp file left beside it


def test_guard_outputs_replace_their_own_earlier_files(built_warehouse: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """What --out may replace: an earlier report page, an earlier export of the same columns (through a link too)."""
    db = str(shutil.copyfile(built_warehouse, tmp_path / "wh.duckdb"))
    page = tmp_path / "site" / "report.html"
    for _ in range(2):
        assert main(["report", "--warehouse", db, "--out", str(page)]) == 0, capsys.readouterr().err
    (tmp_path / "link.html").symlink_to(page)
    assert main(["report", "--warehouse", db, "--out", str(tmp_path / "link.html")]) == 0
    assert (tmp_path / "link.html").is_symlink() and "newsflow report" in page.read_text()
    for fmt in ("parquet", "csv"):
        for _ in range(2):
            assert main(["export", "--warehouse", db, "--format", fmt, "--out", str(tmp_path / "exp"), "runs"]) == 0
            assert main(["export", "--warehouse", db, "--format", fmt, "--query", "select 1 as a",
                         "--out", str(tmp_path / f"q.{fmt}")]) == 0
    assert main(["export", "--warehouse", db, "--query", "select 1 as b", "--out", str(tmp_path / "q.parquet")]) == 2
    assert "not an earlier export of these columns" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "link.html", "q.csv", "q.parquet", "site",
                                                          "wh.duckdb"]
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["runs.csv", "runs.parquet"]
    assert sorted(p.name for p in page.parent.iterdir()) == ["report.html"]  # no temp file left


def test_guard_html_path_is_checked_again_when_the_page_is_written(built_warehouse: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Case 4 at write time: settings that name the warehouse as the page (built past load_settings) log a warning
    and leave the warehouse as it was; the run goes on."""
    import logging

    from flows.core.settings import ReportSettings, load_settings
    from flows.run.finish import write_html_report

    db = Path(shutil.copyfile(built_warehouse, tmp_path / "wh.duckdb"))
    before = db.read_bytes()
    settings = load_settings(warehouse=db, env={})
    settings = settings.model_copy(update={"report": ReportSettings(html_path=str(db))})
    with caplog.at_level(logging.WARNING, logger="test_guard"):
        assert write_html_report(settings, logging.getLogger("test_guard")) is None
    assert "is the warehouse wh.duckdb" in caplog.text
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["wh.duckdb"]


def _limited(max_bytes: int) -> Callable[[], None]:
    """A child process whose files cannot grow past `max_bytes` (a write beyond fails with EFBIG, like ENOSPC)."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def _run_limited(args: list[str], max_bytes: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", str(PROJECT_ROOT))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env,
                          preexec_fn=_limited(max_bytes))


def test_guard_a_full_disk_leaves_no_temp_file(built_warehouse: Path, tmp_path: Path) -> None:
    """Case 14 and 17: when the disk fills mid-write (here: a file size limit), report, export and the snapshot
    publish fail in one line and leave no temp file, no partial snapshot, and no folder they made."""
    db = Path(shutil.copyfile(built_warehouse, tmp_path / "wh.duckdb"))
    before = _tree(tmp_path)
    report = _run_limited(["-m", "flows.cli", "report", "--warehouse", str(db),
                           "--out", str(tmp_path / "site" / "r.html")], 1024)
    assert report.returncode == 2 and "File too large" in report.stderr, report.stderr
    export = _run_limited(["-m", "flows.cli", "export", "--warehouse", str(db), "--format", "csv", "--query",
                           "select range as n from range(100000)", "--out", str(tmp_path / "new" / "q.csv")], 4096)
    assert export.returncode == 2 and export.stderr.count("\n") == 1, export.stderr
    assert _tree(tmp_path) == before

    snapshot = tmp_path / "wh.snapshot.duckdb"
    script = ("import sys; from pathlib import Path; from flows.core.settings import WarehouseSettings; "
              "from flows.warehouse.snapshot import publish_snapshot; "
              "publish_snapshot(WarehouseSettings(path=Path(sys.argv[1]), snapshot_path=Path(sys.argv[2])))")
    publish = _run_limited(["-c", script, str(db), str(snapshot)], db.stat().st_size // 2)
    assert publish.returncode == 1 and "File too large" in publish.stderr, publish.stderr
    assert _tree(tmp_path) == before  # no wh.snapshot.duckdb.tmp beside the warehouse


@pytest.mark.parametrize(("backend", "rel", "says"), [
    ("duckdb", "wh.duckdb", "is the warehouse wh.duckdb"),
    ("duckdb", "wh.duckdb.wal", "a file of the warehouse wh.duckdb"),
    ("duckdb", "wh.duckdb.runlock", "a file of the warehouse wh.duckdb"),
    ("duckdb", "wh.duckdb.demo", "a file of the warehouse wh.duckdb"),
    ("duckdb", "wh.duckdb.keys/exact.keys.npy", "a file of the warehouse wh.duckdb"),
    ("duckdb", "wh.snapshot.duckdb.tmp", "a file of the warehouse snapshot"),
    ("duckdb", "wh.raw", "is the warehouse's raw archive folder"),
    ("duckdb", "wh.raw/2026-11-30/b1.parquet", "inside the warehouse's raw archive folder"),
    ("duckdb", "wh.staging/batch/x.parquet", "inside the warehouse's staging folder"),
    ("duckdb", "seeds/new.txt", "inside the seeds folder"),
    ("duckdb", "page.html", "the [report] html_path page"),
    ("duckdb", "wh.html", None), ("duckdb", "wh.duckdbx", None), ("duckdb", "out/wh.duckdb", None),
    ("lake", "cat.sqlite", "the lake's catalog"),
    ("lake", "cat.sqlite-wal", "the lake's catalog journal"),
    ("lake", "data/main/t/x.parquet", "inside the lake's data folder"),
    ("lake", "cat.html", None),
])
def test_guard_knows_what_the_warehouse_owns(backend: str, rel: str, says: str | None, tmp_path: Path) -> None:
    from flows.core import owned
    from flows.core.settings import load_settings

    wh = {"backend": "ducklake", "catalog": f"sqlite:{tmp_path}/cat.sqlite", "data_path": f"{tmp_path}/data"} \
        if backend == "lake" else {}
    settings = load_settings(warehouse=None if wh else tmp_path / "wh.duckdb", env={}, overrides={
        "warehouse": wh, "pipeline": {"seeds_dir": str(tmp_path / "seeds")},
        "report": {"html_path": str(tmp_path / "page.html")}})
    why = owned.problem(tmp_path / rel, owned.of_settings(settings), "parquet", ["a"])
    assert (why is None) if says is None else (says in why), why


# ---------------------------------------------------------------- issue 20: cases 10, 13, 15, 16, 20

def _config(e: Env, extra: str, name: str = "custom.toml") -> str:
    """The case's config with `extra` appended (TOML tables after its [[feeds]] entries)."""
    return e.file(name, e.config.read_text() + extra)


def _lake(e: Env, catalog: str) -> str:
    """A DuckLake config whose PostgreSQL catalog is on a loopback port nobody listens on (refused at once); its
    data folder exists (a read-only command creating it is case 17's)."""
    (e.tmp / "lake-data").mkdir()
    return e.file("lake.toml", f'[warehouse]\nbackend = "ducklake"\ncatalog = "{catalog}"\n'
                               f'data_path = "{e.p("lake-data")}"\n')


def _truncated(e: Env) -> str:
    """A real warehouse cut short by a copy that did not finish (its header and catalog are intact)."""
    data = e.built.read_bytes()
    (e.tmp / "cut.duckdb").write_bytes(data[:len(data) // 2])
    return e.p("cut.duckdb")


def _staging_file(e: Env) -> str:
    """The case's config with its staging_dir a file."""
    text = e.config.read_text().replace(f'staging_dir = "{e.tmp / "staging"}"', f'staging_dir = "{e.file("st")}"')
    return e.file("st.toml", text)


def _latin1(e: Env) -> str:
    (e.tmp / "latin1.toml").write_bytes('[fetch]\nuser_agent = "café"\n'.encode("latin-1"))
    return e.p("latin1.toml")


def _unused_port() -> int:
    with socket.socket() as sock:  # bound, never listened on, then closed: a connection is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CONTRACT_CASES = [
    # 10: a feed URL Python cannot parse stops the config, naming the entry, before a warehouse is created.
    Case("feed-url-unclosed-ipv6", lambda e: ["ingest", "--config", _config(
        e, '[[feeds]]\nname = "broken"\nurl = "http://[::1:8765/x"\n'), "--warehouse", e.p("new.duckdb")],
         "feeds[2].url: Value error, not a valid URL (Invalid IPv6 URL)"),
    Case("feed-url-bad-port", lambda e: ["status", "--config", _config(
        e, '[[feeds]]\nname = "p"\nurl = "http://127.0.0.1:99999/x"\n'), "--warehouse", e.warehouse()],
         "feeds[2].url"),
    # 13: a PostgreSQL URI is a PostgreSQL catalog (refused by the loopback port), its password masked.
    Case("lake-postgres-uri-password", lambda e: ["status", "--config", _lake(
        e, f"postgres://u:S3cr%40t pw@127.0.0.1:{_unused_port()}/db")], "postgres://***@127.0.0.1:"),
    Case("lake-libpq-quoted-password", lambda e: ["status", "--config", _lake(
        e, f"postgres:host=127.0.0.1 port={_unused_port()} user=u password='my s3cret pw' dbname=db")],
         "password=*** dbname=db"),
    # 15: a truncated warehouse and a deeply nested config are user errors found before any run.
    Case("ingest-truncated-warehouse", lambda e: ["ingest", "--config", str(e.config), "--warehouse", _truncated(e)],
         "the file is truncated"),
    Case("sql-truncated-warehouse", lambda e: _sql(e, "select count(*) from articles", _truncated(e)),
         "the file is truncated"),
    Case("config-nested-too-deeply", lambda e: ["status", "--config", e.file("deep.toml", "a = " + "[" * 5000
                                                                               + "]" * 5000 + "\n")],
         "deep.toml: invalid TOML: arrays or tables nested too deeply"),
    # 16: settings every command checks at load, whichever command it is.
    Case("schedule-unknown-timezone", lambda e: ["sql", "--config", _config(
        e, '[schedule]\ntimezone = "Mars/Olympus_Mons"\n'), "--warehouse", e.warehouse(), "select 1"],
         "schedule.timezone: Value error, unknown time zone"),
    Case("schedule-timezone-from-env", lambda e: _sql(e, "select 1"),
         "NEWSFLOW_SCHEDULE__TIMEZONE='Nowhere/Land'", env={"NEWSFLOW_SCHEDULE__TIMEZONE": "Nowhere/Land"}),
    Case("schedule-invalid-cron", lambda e: ["status", "--config", _config(e, '[schedule]\ncron = "61 * * * *"\n'),
                                             "--warehouse", e.warehouse()], 'Invalid cron string: "61 * * * *"'),
    Case("schedule-hashed-cron", lambda e: ["ingest", "--config", _config(e, '[schedule]\ncron = "H * * * *"\n'),
                                            "--warehouse", e.p("new.duckdb")], "schedule.cron"),
    Case("config-not-utf8", lambda e: ["status", "--config", _latin1(e)], "latin1.toml: not UTF-8 text"),
    Case("config-is-a-folder", lambda e: ["status", "--config", str(e.tmp / "seeds")], "is a folder"),
    Case("report-out-empty", lambda e: ["report", "--warehouse", e.warehouse(), "--out", ""], "--out: empty path"),
    Case("lake-data-path-is-a-file", lambda e: ["ingest", "--config", e.file(
        "lakefile.toml", f'[warehouse]\nbackend = "ducklake"\ncatalog = "{e.p("cat.ducklake")}"\n'
                         f'data_path = "{e.file("data.txt")}"\n')], "warehouse.data_path:"),
    Case("staging-dir-is-a-file", lambda e: ["ingest", "--config", _staging_file(e)], "warehouse.staging_dir:"),
    # 20: one bound for shards, as fanout's.
    Case("shard-beyond-fanout-bound", lambda e: ["ingest", "--config", str(e.config), "--shard", "1/100000"],
         "1 <= K <= N <= 256"),
]


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=[c.id for c in CONTRACT_CASES])
def test_issue_20_contract_cases(case: Case, built_warehouse: Path, tmp_path: Path, busy_port: int,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    test_a_user_error_is_one_line_and_touches_nothing(case, built_warehouse, tmp_path, busy_port, monkeypatch,
                                                      capsys)


@pytest.mark.parametrize("catalog", ["postgres://u:S3cr%40t pw@127.0.0.1:{port}/db",
                                     "postgresql://u:S3cr@t pw@127.0.0.1:{port}/db",
                                     "postgres:host=127.0.0.1 port={port} user=u password='S3cr@t pw' dbname=db"])
def test_a_catalog_password_is_in_no_line_nor_traceback(catalog: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Not in the error line, nor in the --debug traceback; and the URI form opens no local file."""
    env = Env(tmp_path, tmp_path / "unused")
    config = _lake(env, catalog.format(port=_unused_port()))
    for argv in (["status", "--config", config], ["--debug", "status", "--config", config]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "S3cr" not in err and "t pw" not in err, err
        assert "@127.0.0.1:" in err or "host=127.0.0.1" in err, err  # still says where
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake-data", "lake.toml", "newsflow.toml", "seeds"]


def test_staging_error_names_the_file(tmp_path: Path) -> None:
    """A full disk while staging (here: the file size limit, as real an I/O error) names the staging file, and
    leaves no half-written batch."""
    script = ("import resource, signal, sys\nfrom pathlib import Path\nfrom flows.warehouse import staging\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "b = staging.Batch('b1', 'run1')\n"
              "b.add('entries', *[{'url': f'http://127.0.0.1/{i}' * 20} for i in range(2000)])\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
              "try:\n    staging.write(b, Path(sys.argv[1]))\nexcept OSError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "staging")], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "cannot stage batch b1" in proc.stdout and f"{tmp_path / 'staging' / 'b1.tmp' / 'entries.parquet'}" \
        in proc.stdout, proc.stdout
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_stage_only_run_says_it_staged_for_the_loader(tmp_path: Path, prefect_harness: None) -> None:
    """Nothing was locked: the summary says the batches wait for `newsflow load` (a subprocess on the session's
    Prefect API; its one feed is refused at once, so the run stages only its bookkeeping batch)."""
    from prefect.settings import get_current_settings

    env = Env(tmp_path, tmp_path / "unused")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "ingest", "--stage-only", "--config", str(env.config), "--warehouse",
         env.p("s.duckdb"), "--feed", "harbour"], capture_output=True, text=True, timeout=240, cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage-only: 1 batches staged for the loader (`newsflow load`)" in proc.stdout, proc.stdout
    assert "locked" not in proc.stdout


# ---------------------------------------------------------------- issue 20 (resilience): whose file it is
# One place (flows/warehouse/identity.py) decides whether a file is a newsflow warehouse, looking at every schema
# and kind of object; every writer and `demo --fresh` go through it. A lake never writes into a catalog file that
# is not a DuckLake's. `check` refuses what every other writer refuses.

def _objects(e: Env, name: str, *sql: str) -> str:
    """A DuckDB file holding only what `sql` creates (nothing in main's tables)."""
    with duckdb.connect(e.p(name)) as conn:
        for statement in sql:
            conn.execute(statement)
    return e.p(name)


def _payroll(e: Env) -> str:
    return _objects(e, "people.duckdb", "create schema hr", "create table hr.payroll as select 1 as id, 5000 as pay")


def _sqlite(e: Env, name: str = "other.sqlite") -> str:
    import sqlite3

    with contextlib.closing(sqlite3.connect(e.p(name))) as db:
        db.execute("create table customers (id integer, name text)")
        db.commit()
    return e.p(name)


def _lake_config(e: Env, catalog: str) -> str:
    """A config whose warehouse is a DuckLake with `catalog` (a file of the case's folder)."""
    path = e.tmp / "lake.toml"
    path.write_text(f'[warehouse]\nbackend = "ducklake"\ncatalog = "{catalog}"\n'
                    f'staging_dir = "{e.tmp / "staging"}"\npath = "{e.tmp / "default.duckdb"}"\n'
                    f'[pipeline]\nworkers = 1\nseeds_dir = "{e.tmp / "seeds"}"\n' + FEEDS)
    return str(path)


def _truncated(e: Env) -> str:
    """A copy of a warehouse cut to half its size (a copy cut short, a full disk)."""
    wh = e.warehouse("cut.duckdb")
    os.truncate(wh, os.path.getsize(wh) // 2)
    return wh


def _newer(e: Env) -> str:
    """A warehouse a newer newsflow migrated (one migration more than this one knows)."""
    wh = e.warehouse("newer.duckdb")
    with duckdb.connect(wh) as conn:
        conn.execute("insert into schema_migrations values (99, '0099_from_the_future.sql', now())")
    return wh


def _marked(e: Env, wh: str) -> str:
    """`wh` with a `.demo` marker beside it, as if a demo had once been run there."""
    Path(wh + ".demo").write_text("Made by `newsflow demo`\n")
    return wh


def _wh_cmd(command: str) -> Callable[[Callable[[Env], str]], Callable[[Env], list[str]]]:
    return lambda make: lambda e: [command, "--config", str(e.config), "--warehouse", make(e)]


_ingest, _load, _seeds, _check, _reprocess = (_wh_cmd(c) for c in ("ingest", "load", "seeds", "check", "reprocess"))

RESILIENCE_CASES = [
    # 5: a lake's catalog that is somebody else's DuckDB or SQLite file is never written into.
    Case("lake-catalog-foreign-duckdb", lambda e: ["ingest", "--config", _lake_config(e, e.foreign())],
         "not a DuckLake catalog newsflow can use (not a DuckLake catalog: it holds table main.measurements)"),
    Case("lake-catalog-foreign-sqlite", lambda e: ["load", "--config", _lake_config(e, "sqlite:" + _sqlite(e))],
         "not a DuckLake catalog: it holds table main.customers"),
    Case("lake-catalog-sqlite-without-prefix", lambda e: ["seeds", "--config", _lake_config(e, _sqlite(e))],
         "a SQLite file (a SQLite catalog is written `sqlite:<path>`)"),
    Case("lake-catalog-newsflow-file", lambda e: ["status", "--config", _lake_config(e, e.warehouse())],
         "not a DuckLake catalog"),
    Case("lake-catalog-text-file", lambda e: ["check", "--config", _lake_config(e, e.file("cat.ducklake"))],
         "not a DuckLake catalog newsflow can use"),
    # 6: tables outside `main`, or only a macro, sequence, type or schema, are somebody's data, not "empty".
    Case("ingest-tables-outside-main", _ingest(_payroll), "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("load-tables-outside-main", _load(_payroll), "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("seeds-tables-outside-main", _seeds(_payroll), "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("check-tables-outside-main", _check(_payroll), "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("reprocess-tables-outside-main", _reprocess(_payroll), "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("demo-into-tables-outside-main", lambda e: ["demo", "--warehouse", _payroll(e)],
         "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("demo-fresh-tables-outside-main", lambda e: ["demo", "--fresh", "--warehouse", _marked(e, _payroll(e))],
         "not a newsflow warehouse (it holds table hr.payroll)"),
    Case("load-only-a-macro", _load(lambda e: _objects(e, "m.duckdb", "create macro twice(x) as 2 * x")),
         "not a newsflow warehouse (it holds macro main.twice)"),
    Case("ingest-only-a-sequence", _ingest(lambda e: _objects(e, "q.duckdb", "create sequence invoice_no")),
         "not a newsflow warehouse (it holds sequence main.invoice_no)"),
    Case("seeds-only-a-type", _seeds(lambda e: _objects(e, "t.duckdb", "create type mood as enum ('ok', 'sad')")),
         "not a newsflow warehouse (it holds type main.mood)"),
    Case("demo-only-a-schema", lambda e: ["demo", "--warehouse", _objects(e, "s.duckdb", "create schema budget")],
         "not a newsflow warehouse (it holds schema budget)"),
    Case("ingest-sqlite-file", _ingest(lambda e: _sqlite(e, "data.db")), "not a newsflow warehouse"),
    Case("load-foreign-schema-migrations",
         _load(lambda e: _objects(e, "sm.duckdb", "create table schema_migrations (id integer, note varchar)")),
         "its schema_migrations has columns id, note, not newsflow's"),
    # 8: `check` refuses what every other writer refuses, before it writes.
    Case("check-truncated-warehouse", _check(_truncated), "the file is truncated"),
    Case("check-newer-schema", _check(_newer), "warehouse schema is version 99, newer than this newsflow"),
    Case("load-truncated-warehouse", _load(_truncated), "the file is truncated"),
    Case("reprocess-newer-schema", _reprocess(_newer), "newer than this newsflow"),
]


@pytest.mark.parametrize("case", RESILIENCE_CASES, ids=[c.id for c in RESILIENCE_CASES])
def test_resilience_user_error_is_one_line_and_touches_nothing(case: Case, built_warehouse: Path, tmp_path: Path,
                                                               busy_port: int, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    test_a_user_error_is_one_line_and_touches_nothing(case, built_warehouse, tmp_path, busy_port, monkeypatch, capsys)


def test_the_demo_marks_only_a_warehouse_its_run_made(built_warehouse: Path, tmp_path: Path) -> None:
    """21: the `.demo` marker (what lets `demo --fresh` delete) is written after the run, and only beside a
    newsflow warehouse: a run that failed before creating it leaves no file `--fresh` would take for its own."""
    missing, empty, made = tmp_path / "missing.duckdb", tmp_path / "empty.duckdb", tmp_path / "made.duckdb"
    duckdb.connect(str(empty)).close()
    shutil.copyfile(built_warehouse, made)
    assert [demo.mark(p) for p in (missing, empty, made)] == [False, False, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.duckdb", "made.duckdb", "made.duckdb.demo"]
