"""Stories in the warehouse: the loader places each batch's new articles and copies (flows/text/stories.py) inside
its transaction, reading only the open stories that share a key with an article (story_keys, bounded to live
stories) and the document frequencies of its terms; `newsflow reprocess --step stories` rebuilds them all in
canonical order. Tables: warehouse/migrations/0013_stories.sql; docs/stories.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from flows.text.stories import Story, StoryIndex, StoryItem, StorySettings, order_key
from flows.warehouse.staging import stable_key

_TOP_ENTITIES = 5


@dataclass
class StoryChanges:
    """What a load did to stories: the ones it started and the ones it added articles to."""
    placed: int = 0
    started: list[int] = field(default_factory=list)
    grown: list[int] = field(default_factory=list)


class WarehouseBacking:
    """The clusterer's view of the stored stories: point lookups, never a scan of stored articles."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def df(self, terms: Sequence[str]) -> dict[str, int]:
        rows = self.conn.execute("select term, df from story_df where term in (select unnest($t::varchar[]))",
                                 {"t": list(terms)}).fetchall()
        return dict(rows)

    def stories_with(self, terms: Sequence[str], entities: Sequence[str], since: datetime) -> list[Story]:
        rows = self.conn.execute("""
            with hits as (
                select distinct story_id from story_keys
                where (kind = 't' and key in (select unnest($t::varchar[])))
                   or (kind = 'e' and key in (select unnest($e::varchar[])))
            )
            select l.story_id, l.first_article, l.last_article, l.size, k.kind, k.key, k.weight
            from story_live l join hits using (story_id) join story_keys k using (story_id)
            where l.last_article >= $since
            """, {"t": list(terms), "e": list(entities), "since": since}).fetchall()
        stories: dict[str, Story] = {}
        for sid, first, last, size, kind, key, weight in rows:
            story = stories.get(str(sid))
            if story is None:
                story = stories[str(sid)] = Story(str(sid), _utc(first), _utc(last), size, {}, {}, {})
            {"t": story.terms, "e": story.entities, "l": story.languages}[kind][key] = weight
        return list(stories.values())


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def _state(conn: duckdb.DuckDBPyConnection) -> tuple[int, int, datetime | None]:
    row = conn.execute("select docs, seq, newest from story_state").fetchone()
    return (row[0], row[1], _utc(row[2]) if row[2] else None) if row else (0, 0, None)


def _register(conn: duckdb.DuckDBPyConnection, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    conn.register(name, pa.Table.from_pylist(rows, schema=schema))


_MEMBER = pa.schema([("article_id", pa.int64()), ("story_id", pa.int64()), ("url", pa.string()),
                     ("title", pa.string()), ("copy_of", pa.int64()), ("outlet", pa.string()),
                     ("language", pa.string()), ("published", pa.timestamp("us", tz="UTC")),
                     ("similarity", pa.float64()), ("seq", pa.int64()), ("placed_at", pa.timestamp("us", tz="UTC")),
                     ("run_id", pa.string())])
_KEY = pa.schema([("story_id", pa.int64()), ("kind", pa.string()), ("key", pa.string()), ("weight", pa.int64())])
_LIVE = pa.schema([("story_id", pa.int64()), ("first_article", pa.timestamp("us", tz="UTC")),
                   ("last_article", pa.timestamp("us", tz="UTC")), ("size", pa.int32())])
_DF = pa.schema([("term", pa.string()), ("df", pa.int32())])


def place(conn: duckdb.DuckDBPyConnection, items: Sequence[StoryItem], urls: dict[str, str],
          settings: StorySettings, now: datetime, run_id: str | None = None) -> StoryChanges:
    """Place a batch's articles (in canonical order) and copies (with their original's story), inside the caller's
    transaction. `urls` maps each item's article_id to its URL. Articles already placed are skipped."""
    changes = StoryChanges()
    ids = [int(i.article_id) for i in items]
    if not ids:
        return changes
    placed = {r[0] for r in conn.execute(
        "select article_id from story_articles where article_id in (select unnest($ids::bigint[]))",
        {"ids": ids}).fetchall()}
    todo = [i for i in items if int(i.article_id) not in placed]
    originals = sorted((i for i in todo if i.copy_of is None), key=order_key)
    copies = sorted((i for i in todo if i.copy_of is not None), key=order_key)
    docs, seq, newest = _state(conn)
    index = StoryIndex(settings, docs=docs, backing=WarehouseBacking(conn))
    members: list[dict[str, Any]] = []
    story_of: dict[str, str] = {}
    for item in originals:
        p = index.place(item)
        story_of[item.article_id] = p.story_id
        seq += 1
        members.append(_member(item, urls, p.story_id, p.similarity, seq, now) | {"run_id": run_id})
        (changes.started if p.started else changes.grown).append(int(p.story_id))
    story_of |= _stored_stories(conn, sorted({int(c.copy_of) for c in copies if c.copy_of not in story_of}))
    for item in copies:
        sid = story_of.get(item.copy_of)  # type: ignore[arg-type]
        if sid is None:
            continue  # its original was stored before stories were: `newsflow reprocess --step stories` places it
        seq += 1
        members.append(_member(item, urls, sid, 1.0, seq, now) | {"run_id": run_id})
        changes.grown.append(int(sid))
    latest = max([i.published for i in originals], default=newest)
    newest = max(newest, latest) if newest and latest else (newest or latest)
    flush(conn, index, members, (index.docs, seq, newest), settings, now)
    changes.placed = len(members)
    started = set(changes.started)
    changes.grown = sorted(set(changes.grown) - started)
    changes.started = sorted(started)
    return changes


def _member(item: StoryItem, urls: dict[str, str], story_id: str, similarity: float, seq: int, now: datetime
            ) -> dict[str, Any]:
    return {"article_id": int(item.article_id), "story_id": int(story_id), "url": urls.get(item.article_id, ""),
            "title": item.title, "copy_of": int(item.copy_of) if item.copy_of else None, "outlet": item.outlet,
            "language": item.language, "published": item.published, "similarity": round(similarity, 6),
            "seq": seq, "placed_at": now}


def _stored_stories(conn: duckdb.DuckDBPyConnection, ids: list[int]) -> dict[str, str]:
    if not ids:
        return {}
    rows = conn.execute("select article_id, story_id from story_articles where article_id in "
                        "(select unnest($ids::bigint[]))", {"ids": ids}).fetchall()
    return {str(a): str(s) for a, s in rows}


def flush(conn: duckdb.DuckDBPyConnection, index: StoryIndex, members: list[dict[str, Any]],
          state: tuple[int, int, datetime | None], settings: StorySettings, now: datetime) -> None:
    """Write what placing changed: members, document frequencies, the live state of changed stories, the
    counters, the `stories` rows of touched stories; then prune stories no article can join any more."""
    dirty = sorted(int(s) for s in index.dirty_stories)
    _register(conn, "q_members", members, _MEMBER)
    _register(conn, "q_df", [{"term": t, "df": index.df[t]} for t in sorted(index.dirty_df)], _DF)
    live = [index.stories[str(s)] for s in dirty]
    _register(conn, "q_live", [{"story_id": int(s.story_id), "first_article": s.first, "last_article": s.last,
                                "size": s.size} for s in live], _LIVE)
    _register(conn, "q_keys", [{"story_id": int(s.story_id), "kind": kind, "key": k, "weight": w}
                               for s in live for kind, keys in (("t", s.terms), ("e", s.entities),
                                                                 ("l", s.languages)) for k, w in keys.items()], _KEY)
    try:
        conn.execute("insert into story_articles by name select * from q_members")
        conn.execute("delete from story_df where term in (select term from q_df)")
        conn.execute("insert into story_df by name select * from q_df")
        conn.execute("delete from story_live where story_id in (select story_id from q_live)")
        conn.execute("insert into story_live by name select * from q_live")
        conn.execute("delete from story_keys where story_id in (select story_id from q_live)")
        conn.execute("insert into story_keys by name select * from q_keys")
    finally:
        for name in ("q_members", "q_df", "q_live", "q_keys"):
            conn.unregister(name)
    conn.execute("delete from story_state")
    conn.execute("insert into story_state values (?, ?, ?)", list(state))
    tops = {int(s.story_id): [e for e, _ in sorted(s.entities.items(), key=lambda kv: (-kv[1], kv[0]))]
            [:_TOP_ENTITIES] for s in live}
    summarise(conn, sorted({m["story_id"] for m in members}), tops, now)
    if state[2] is not None:
        horizon = state[2] - timedelta(days=2 * settings.window_days)
        conn.execute("delete from story_keys where story_id in "
                     "(select story_id from story_live where last_article < $h)", {"h": horizon})
        conn.execute("delete from story_live where last_article < $h", {"h": horizon})


def summarise(conn: duckdb.DuckDBPyConnection, story_ids: list[int], tops: dict[int, list[str]], now: datetime
              ) -> None:
    """(Re)write the `stories` rows of `story_ids` from their members; top entities from `tops` where given,
    else kept."""
    if not story_ids:
        return
    conn.execute("""
        create or replace temp table q_stories as
        select m.story_id,
               any_value(m.title) filter (where m.article_id = m.story_id) as title,
               min(m.published) as first_seen, max(m.published) as last_seen,
               count(*)::integer as articles, count(*) filter (where m.copy_of is null)::integer as originals,
               count(distinct m.outlet)::integer as outlets,
               list_sort(list_distinct(list(m.language) filter (where m.language is not null))) as languages
        from story_articles m
        where m.story_id in (select unnest($ids::bigint[]))
        group by m.story_id
        """, {"ids": story_ids})
    conn.register("q_tops", pa.Table.from_pylist(
        [{"story_id": k, "top_entities": v} for k, v in tops.items()],
        schema=pa.schema([("story_id", pa.int64()), ("top_entities", pa.list_(pa.string()))])))
    try:
        conn.execute("""
            create or replace temp table q_stories2 as
            select q.*, coalesce(t.top_entities, s.top_entities) as top_entities, $now::timestamptz as updated_at
            from q_stories q left join q_tops t using (story_id) left join stories s using (story_id)
            """, {"now": now})
    finally:
        conn.unregister("q_tops")
    conn.execute("delete from stories where story_id in (select story_id from q_stories2)")
    conn.execute("insert into stories by name select * from q_stories2")
    conn.execute("drop table q_stories")
    conn.execute("drop table q_stories2")


Progress = Callable[[int, int], None]


def rebuild(conn: duckdb.DuckDBPyConnection, settings: StorySettings, *, chunk: int = 2000,
            progress: Progress | None = None) -> int:
    """Forget every story and place all stored articles again in canonical order, then their copies; one
    transaction per chunk (a run stopped half way is finished by running it again, which starts over)."""
    from flows.warehouse.database import query, transaction

    with transaction(conn):
        for table in ("stories", "story_articles", "story_live", "story_keys", "story_df", "story_state"):
            conn.execute(f"delete from {table}")
        conn.execute(f"create or replace temp table q_order as {query('stories_order')}")
    total = conn.execute("select count(*) from q_order").fetchone()[0]
    done = 0
    while done < total:
        with transaction(conn):
            rows = conn.execute(query("stories_items"), {"lo": done, "hi": done + chunk}).fetchall()
            items, urls = items_from_rows(rows)
            place(conn, items, urls, settings, datetime.now(UTC))
        done += chunk
        if progress:
            progress(min(done, total), total)
    conn.execute("drop table q_order")
    copies = conn.execute(query("stories_copies")).fetchall()
    for start in range(0, len(copies), chunk):
        with transaction(conn):
            items, urls = [], {}
            for url, title, time, feed, language, original in copies[start:start + chunk]:
                key = str(stable_key(url))
                items.append(StoryItem(key, title or "", "", _utc(time), feed or "", language, (), str(original)))
                urls[key] = url
            place(conn, items, urls, settings, datetime.now(UTC))
    return total + len(copies)


def items_from_rows(rows: list[tuple[Any, ...]]) -> tuple[list[StoryItem], dict[str, str]]:
    """StoryItems from rows of (article_id, url, title, text, time, outlet, language, entities, copy_of)."""
    items, urls = [], {}
    for article_id, url, title, text, time, outlet, language, names, copy_of in rows:
        key = str(article_id)
        items.append(StoryItem(key, title or "", text or "", _utc(time), outlet or "", language,
                               tuple(sorted(names or ())), str(copy_of) if copy_of is not None else None))
        urls[key] = url
    return items, urls
