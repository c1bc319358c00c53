"""The query guard (flows/warehouse/queryguard.py): hostile statements, written by hand and generated, are refused
before anything runs; ordinary read queries pass and run on a real warehouse with a raw archive beside it.

Covers: flows.warehouse.queryguard
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.cli import main
from flows.core.errors import QueryError
from flows.core.settings import WarehouseSettings
from flows.warehouse import database, queryguard

RAW = "/srv/wh.raw"

# Each one writes, changes settings, loads code or reaches outside the warehouse when run.
HOSTILE = [
    f"EXPLAIN ANALYZE COPY (select 1 as a) TO '{RAW}/2026-11-30' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)",
    f"explain analyze copy (select 1) to '{RAW}/2026-11-30/b1.parquet' (format parquet)",
    f"EXPLAIN (ANALYZE, FORMAT json) COPY (select 1) TO '{RAW}/x.csv'",
    f"/* note */ explain -- why\n analyse copy (select 1) to '{RAW}/x.csv'",
    f"copy (select 1) to '{RAW}/x.csv'",
    "copy articles from '/tmp/evil.csv'",
    f"CALL enable_logging(storage='file', storage_path='{RAW}/logs')",
    "call enable_logging(storage='file', storage_path='/tmp/logs')",
    f"select * from enable_logging(storage='file', storage_path='{RAW}/logs')",
    "select * from articles where exists (select * from enable_profiling())",
    "call disable_logging()", "call truncate_duckdb_logs()", "call checkpoint()", "checkpoint", "force checkpoint",
    f"select 1; copy (select 1) to '{RAW}/x.csv'",
    f"select 1;\n-- and then\nexplain analyze copy (select 1) to '{RAW}/x.csv'",
    f"select * from query('copy (select 1) to ''{RAW}/x.csv''')",
    "select * from query_table('articles')",
    "select * from json_execute_serialized_sql('{}')",
    "select * from arrow_scan(1, 2, 3)",
    f"attach '{RAW}/new.duckdb' as n", "attach ':memory:' as m", "detach m", "use memory",
    f"pragma profiling_output='{RAW}/p.txt'", "pragma enable_profiling", "pragma force_checkpoint",
    "pragma import_database('/etc')", "pragma copy_database(a, b)",
    "set allowed_directories = ['/']", "set enable_external_access = true", "reset threads",
    "set variable x = 1", "install httpfs", "load httpfs", "force install spatial", "update extensions",
    f"export database '{RAW}/dump'", "import database '/tmp/dump'",
    "create table t as select 1", "create or replace view articles as select 1", "create secret (type s3)",
    "create macro m() as 1", "insert into runs select * from runs", "update articles set title = ''",
    "delete from articles", "truncate articles", "drop table articles", "alter table articles add column x int",
    "comment on table articles is 'x'", "vacuum", "analyze",
    "merge into feeds using (select 1 as a) s on true when matched then delete",
    "begin", "commit", "prepare p as select 1", "execute p", "deallocate p",
    "with s as (select nextval('seq') as n) select * from s",
    "select setseed(0.5)", "select write_log('x')", "select (select sleep_ms(100000))",
    "describe (select setseed(0.5))", "summarize select nextval('s')",
    "pivot articles on feed",
]

# Writing statements and SELECT-shaped ones whose function acts, for the generated cases.
WRITES = [
    f"copy (select 1 as a) to '{RAW}/d' (format parquet, partition_by (a), overwrite)",
    f"attach '{RAW}/n.duckdb' as n",
    "set lock_configuration = false",
    f"pragma profiling_output = '{RAW}/p'",
    "install httpfs",
    f"export database '{RAW}/e'",
    "insert into runs select * from runs",
    "create table x as select 1",
    "checkpoint",
]
ACTING_SELECTS = [
    f"select * from enable_logging(storage='file', storage_path='{RAW}/l')",
    f"select * from query('copy (select 1) to ''{RAW}/x''')",
    "select nextval('s') as n",
    "select setseed(0.1) as s",
    "select * from checkpoint()",
]
QUERY_WRAPPERS = [  # a SELECT inside another query: the guard must look all the way in
    "select * from ({})",
    "with w as ({}) select * from w",
    "with recursive w as ({}) select * from w",
    "select (select count(*) from ({})) as n",
    "select 1 where exists ({})",
    "select * from range(2) r, lateral ({}) l",
    "select 1 as a union all select * from ({})",
    "describe {}",
    "summarize {}",
]
STATEMENT_WRAPPERS = ["{}", "explain {}", "EXPLAIN ANALYZE {}", "explain analyse {}", "explain (format json) {}",
                      "/* c */ {}", "-- c\n{}"]


_PARSER = duckdb.connect()
_PARSER.execute("set enable_external_access = false")


@st.composite
def hostile(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        inner = draw(st.sampled_from(ACTING_SELECTS))
        for wrapper in draw(st.lists(st.sampled_from(QUERY_WRAPPERS), max_size=3)):
            inner = wrapper.format(inner)
    else:
        inner = draw(st.sampled_from(WRITES))
    statement = draw(st.sampled_from(STATEMENT_WRAPPERS)).format(inner)
    before = draw(st.lists(st.sampled_from(["select 1", "show tables", "pragma version"]), max_size=2))
    after = draw(st.lists(st.sampled_from(["select 2", "describe articles"]), max_size=2))
    return "; ".join([*before, statement, *after])


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_statement_is_refused(text: str) -> None:
    with pytest.raises(QueryError):
        queryguard.check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_a_write_wrapped_anywhere_is_refused_as_read_only(text: str) -> None:
    try:
        _PARSER.extract_statements(text)
    except duckdb.Error:  # not SQL DuckDB takes (EXPLAIN ATTACH, say): refused as what it is, a parse error
        with pytest.raises(QueryError, match="Error"):
            queryguard.check(text)
        return
    with pytest.raises(QueryError, match="queries are read-only"):
        queryguard.check(text)


READS = [
    "select count(*) from articles",
    "select a.title, f.feed from articles a join feeds f on a.feed = f.feed order by a.article_id limit 5",
    "with per_feed as (select feed, count(*) as n from articles group by feed) select * from per_feed where n > 1",
    "with recursive r(i) as (select 1 union all select i + 1 from r where i < 5) select sum(i) from r",
    "select feed, row_number() over (partition by feed order by article_id) as k, "
    "lag(article_id) over w as prev from articles window w as (order by article_id)",
    "select * from syndication limit 3",
    "select * from entity_mentions_top limit 3",
    "select * from run_history", "select * from feed_health", "select * from articles_per_day",
    "select url, (select count(*) from entities) as n from articles where exists (select 1 from feeds)",
    "select count(*) as n, max(octet_length(html)) from read_parquet('{raw}/**/*.parquet')",
    "select a.title from read_parquet('{raw}/**/*.parquet') r left join articles a using (url)",
    "select * from glob('{raw}/**')",
    "from articles select feed, count(*) group by all order by all",
    "describe articles", "show tables", "summarize select * from runs", "pragma table_info('articles')",
    "pragma version", "pragma database_size", "call pragma_version()", "call duckdb_tables()",
    "select table_name from duckdb_tables() order by 1", "select * from information_schema.columns limit 1",
    "explain select * from articles", "explain analyze select count(*) from articles",
    "select [x * 2 for x in range(3)] as l, {'a': 1} as s, 'ab' like 'a%' as m, random() < 2 as r, now() as t",
    "select 1 as a; select 2 as b",
    "-- a comment first\nselect 1",
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("guard") / "wh.duckdb"
    assert database.ensure_ready(WarehouseSettings(path=db, staging_dir=db.parent / "s",
                                                    snapshot_path=db.parent / "snap.duckdb"))
    day = db.parent / "wh.raw" / "2026-11-30"
    day.mkdir(parents=True)
    pq.write_table(pa.table({"url": ["http://127.0.0.1/a"], "html": [b"\x00\x01"]}), day / "b1.parquet")
    return db


@pytest.mark.parametrize("text", READS)
def test_an_ordinary_read_passes_and_runs(text: str, warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = text.replace("{raw}", str(warehouse.parent / "wh.raw"))
    queryguard.check(query)
    assert main(["sql", "--warehouse", str(warehouse), "--format", "csv", query]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["wh.duckdb", "wh.raw"]
