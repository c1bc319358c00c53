"""The report's figures as small aggregates kept up to date by every load (migration 0011, docs/schema.md).

Each aggregate's figures come from one query (warehouse/queries/aggregate_<table>.sql) over three temp views:
`agg_articles`, `agg_links` (entity links) and `agg_copies`. Pointed at a batch
(add_batch), at some stored articles (remove_articles, add_links, remove_links) or at everything
(rebuild_aggregates), the same query gives the figures to add, take away or start from, so the aggregates after
any batching, order or reprocessing equal a rebuild from scratch (tests/test_aggregates.py).
Every function runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from flows.warehouse.database import query


@dataclass(frozen=True)
class Aggregate:
    table: str
    keys: tuple[str, ...]
    counts: tuple[str, ...]  # added on a load, taken away on a removal; the row goes when `articles` is 0


ENTITY_AGGREGATES = (
    Aggregate("daily_entity_mentions", ("day", "entity_id"), ("mentions", "articles")),
    Aggregate("entity_totals", ("entity_id",), ("mentions", "articles")),
)
ARTICLE_AGGREGATES = (
    Aggregate("daily_feed_articles", ("day", "feed"), ("articles", "fallbacks")),
    Aggregate("feed_quality", ("feed",), ("articles", "assessed", "paywalled", "teasers", "teaser_assessed",
                                          "consent_pages")),
)
AGGREGATES = ENTITY_AGGREGATES + ARTICLE_AGGREGATES
TABLES = (*(a.table for a in AGGREGATES), "story_copies")

# The columns the aggregate queries read, typed as the tables hold them.
_ARTICLE_COLUMNS = ("article_id::bigint as article_id, feed::varchar as feed, is_seed::boolean as is_seed, "
                    "body_source::varchar as body_source, published_at::timestamptz as published_at, "
                    "fetched_at::timestamptz as fetched_at, loaded_at::timestamptz as loaded_at, "
                    "access::varchar as access, is_teaser::boolean as is_teaser, "
                    "is_consent_page::boolean as is_consent_page")
_LINK_COLUMNS = "article_id::bigint as article_id, entity_id::bigint as entity_id, mentions::bigint as mentions"
_COPY_COLUMNS = "duplicate_of::bigint as duplicate_of, method::varchar as method, seen_at::timestamptz as seen_at"
_TIME = pa.timestamp("us", tz="UTC")
_SCHEMAS = {
    "q_agg_articles": pa.schema([("article_id", pa.int64()), ("feed", pa.string()), ("is_seed", pa.bool_()),
                                 ("body_source", pa.string()), ("published_at", _TIME), ("fetched_at", _TIME),
                                 ("loaded_at", _TIME), ("access", pa.string()), ("is_teaser", pa.bool_()),
                                 ("is_consent_page", pa.bool_())]),
    "q_agg_links": pa.schema([("article_id", pa.int64()), ("entity_id", pa.int64()), ("mentions", pa.int64())]),
    "q_agg_copies": pa.schema([("url", pa.string()), ("duplicate_of", pa.int64()), ("method", pa.string()),
                               ("seen_at", _TIME)]),
}
_STORED_LINKS = "(select article_id, entity_id, mentions from article_entities{where})"
_ONLY_IDS = " where article_id in (select article_id from q_agg_ids)"


def _views(conn: duckdb.DuckDBPyConnection, articles: str, links: str, copies: str = "duplicates") -> None:
    """Point the three views at their sources (relation names or parenthesised selects, never values)."""
    conn.execute(f"create or replace temp view agg_articles as select {_ARTICLE_COLUMNS} from {articles}")
    conn.execute(f"create or replace temp view agg_links as select {_LINK_COLUMNS} from {links}")
    conn.execute(f"create or replace temp view agg_copies as select {_COPY_COLUMNS} from {copies}")


def _stored(conn: duckdb.DuckDBPyConnection, ids: Iterable[int]) -> None:
    """Point the views at the stored articles `ids` and their links."""
    conn.register("q_agg_ids", pa.table({"article_id": pa.array(sorted(set(ids)), type=pa.int64())}))
    _views(conn, "(select * from articles where article_id in (select article_id from q_agg_ids))",
           _STORED_LINKS.format(where=_ONLY_IDS))


def _merge(conn: duckdb.DuckDBPyConnection, agg: Aggregate, sign: int, figures: str) -> None:
    """Add (sign 1) or take away (sign -1) `figures` (a relation: the views' rows summed as `agg`'s table holds
    them) to `agg`'s table."""
    on = " and ".join(f"t.{k} = r.{k}" for k in agg.keys)
    update = ", ".join(f"{c} = t.{c} + $sign * r.{c}" for c in agg.counts)
    conn.execute(f"merge into {agg.table} t using {figures} r on {on} "
                 f"when matched then update set {update} when not matched and $sign > 0 then insert by name",
                 {"sign": sign})
    if sign < 0:
        # A key with nothing left is dropped, as a rebuild would never make it.
        conn.execute(f"delete from {agg.table} where articles <= 0")


def _apply(conn: duckdb.DuckDBPyConnection, aggs: Sequence[Aggregate], sign: int) -> None:
    for agg in aggs:
        figures = f"({query('aggregate_' + agg.table)})"
        if agg.table != "daily_entity_mentions":
            _merge(conn, agg, sign, figures)
            continue
        # Kept as a table: its keys are those whose baselines the merge moves (a removal's rows may be gone after).
        conn.execute(f"create or replace temp table agg_touched as select * from {figures}")
        _merge(conn, agg, sign, "agg_touched")
        _recount_moved_baselines(conn)


def _recount_moved_baselines(conn: duckdb.DuckDBPyConnection) -> None:
    """Set prior_7d again where the change in `agg_touched` moved it: each touched entity on its touched day and
    the 7 days after (a few thousand rows a load, whatever the warehouse holds)."""
    if conn.execute("select count(*) from agg_touched").fetchone()[0]:
        _set_baselines(conn, "aggregate_entity_baselines")


def _set_baselines(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.execute(f"merge into daily_entity_mentions t using ({query(name)}) r "
                 "on t.day = r.day and t.entity_id = r.entity_id "
                 "when matched and t.prior_7d is distinct from r.prior_7d then update set prior_7d = r.prior_7d")


def recount_baselines(conn: duckdb.DuckDBPyConnection) -> None:
    """Set every daily_entity_mentions row's prior_7d from the table's own mentions (after a rebuild, or rows
    written without the loader). Inside the caller's transaction, if any."""
    _set_baselines(conn, "aggregate_entity_baselines_all")


def _first(rows: Iterable[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per key, the first: what the loader's `insert or ignore` keeps of a batch."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(tuple(row[k] for k in key), row)
    return list(seen.values())


def add_batch(conn: duckdb.DuckDBPyConnection, articles: list[dict[str, Any]], links: list[dict[str, Any]],
              copies: list[dict[str, Any]]) -> None:
    """Add what one load inserted: its new `articles` rows, their entity `links` and the `copies` (duplicates
    rows) it recorded. O(batch): only the batch's keys are touched."""
    if not articles and not copies:
        return
    for name, rows, key in (("q_agg_articles", articles, ("article_id",)),
                            ("q_agg_links", links, ("article_id", "entity_id")), ("q_agg_copies", copies, ("url",))):
        conn.register(name, pa.Table.from_pylist(_first(rows, key), schema=_SCHEMAS[name]))
    _views(conn, "q_agg_articles", "q_agg_links", "q_agg_copies")
    _apply(conn, AGGREGATES, 1)
    if copies:
        conn.execute(f"merge into story_copies t using ({query('aggregate_story_copies')}) r "
                     "on t.article_id = r.article_id when matched then update set copies = t.copies + r.copies, "
                     "exact_copies = t.exact_copies + r.exact_copies, near_copies = t.near_copies + r.near_copies, "
                     "first_seen_at = least(t.first_seen_at, r.first_seen_at), "
                     "last_seen_at = greatest(t.last_seen_at, r.last_seen_at) "
                     "when not matched then insert by name")


def remove_articles(conn: duckdb.DuckDBPyConnection, ids: Sequence[int]) -> None:
    """Take away the figures of the stored articles `ids` and their links, before they are deleted."""
    if ids:
        _stored(conn, ids)
        _apply(conn, AGGREGATES, -1)


def remove_links(conn: duckdb.DuckDBPyConnection, ids: Sequence[int]) -> None:
    """Take away the entity figures of the stored articles `ids`, before their links are replaced."""
    if ids:
        _stored(conn, ids)
        _apply(conn, ENTITY_AGGREGATES, -1)


def add_links(conn: duckdb.DuckDBPyConnection, ids: Sequence[int]) -> None:
    """Add the entity figures of the stored articles `ids`, after their links were replaced."""
    if ids:
        _stored(conn, ids)
        _apply(conn, ENTITY_AGGREGATES, 1)


def recount_copies(conn: duckdb.DuckDBPyConnection, originals: Iterable[int]) -> None:
    """Count again the copies of the stored originals `originals` (after reprocessing moved copies between them)."""
    ids = sorted(set(originals))
    if not ids:
        return
    conn.register("q_agg_ids", pa.table({"article_id": pa.array(ids, type=pa.int64())}))
    _views(conn, "articles", _STORED_LINKS.format(where=""),
           "(select * from duplicates where duplicate_of in (select article_id from q_agg_ids))")
    conn.execute("delete from story_copies where article_id in (select article_id from q_agg_ids)")
    conn.execute(f"insert into story_copies by name {query('aggregate_story_copies')}")


def rebuild_aggregates(conn: duckdb.DuckDBPyConnection) -> None:
    """Recompute every aggregate from the whole warehouse (a full pass: for the maintenance flow, warehouses
    filled without the loader, and repairs). Inside the caller's transaction, if any."""
    _views(conn, "articles", _STORED_LINKS.format(where=""))
    for table in TABLES:
        conn.execute(f"delete from {table}")
        conn.execute(f"insert into {table} by name {query('aggregate_' + table)}")
    recount_baselines(conn)
