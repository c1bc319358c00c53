"""The command-line contract, case by case through the real `newsflow` entry point (flows.cli.main in-process):
a user error is one line on stderr and exit 2 (an unexpected one exit 1), nothing is run first, and no file is
created, changed or deleted. Each case is a bad input a user once met a traceback, a silent default or a lost
file with."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
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
    Case("check-truncated-warehouse", _check(_truncated), "truncated: "),
    Case("check-newer-schema", _check(_newer), "warehouse schema is version 99, newer than this newsflow"),
    Case("load-truncated-warehouse", _load(_truncated), "truncated: "),
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
