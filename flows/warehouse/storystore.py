"""Stories in the warehouse: the loader places each batch's new articles and copies (flows/text/stories.py) inside
its transaction, reading only the open stories that share a key with an article (story_keys, bounded to live
stories) and the document frequencies of its terms; `newsflow reprocess --step stories` rebuilds them all in
canonical order. Tables: warehouse/migrations/0013_stories.sql; docs/stories.md."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from flows.text.stories import Postings, Story, StoryIndex, StoryItem, StorySettings, days_before, epoch_us, order_key
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
        self.conn.register("q_story_terms", pa.table({"term": pa.array(list(terms), pa.string())}))
        try:
            return dict(self.conn.execute("select term, df from story_df join q_story_terms using (term)").fetchall())
        finally:
            self.conn.unregister("q_story_terms")

    def postings(self, terms: Sequence[str], entities: Sequence[str], since: datetime | None
                 ) -> dict[tuple[str, str], Postings]:
        keys = [{"key": t, "kind": "t"} for t in terms] + [{"key": e, "kind": "e"} for e in entities]
        # A registered table, not a list parameter: binding a few thousand strings costs more than the join.
        self.conn.register("q_lookup", pa.Table.from_pylist(keys, schema=_LOOKUP))
        try:
            hashes = self.conn.execute("select md5_number_upper(kind || key) as h, kind, key from q_lookup"
                                       ).fetchall()
            # Joined on the keys' 64-bit hashes, not on two strings: hashing the strings of every live posting cost
            # most of the lookup. Two keys that share a hash would share postings: as with article ids (64-bit
            # keys of URLs), that is taken as never happening. Fetched as arrays (not a Python object per value,
            # nor a key's string per posting) in hash order, each key's postings cut out at once.
            rows = self.conn.execute("""
                select k.h, k.story_id, -k.last_article as negative_last
                from story_keys k semi join (select md5_number_upper(kind || key) as h from q_lookup) q using (h)
                where k.last_article >= $since
                order by k.h, negative_last
                """, {"since": epoch_us(since or _EPOCH)}).fetchnumpy()
        finally:
            self.conn.unregister("q_lookup")
        h = rows["h"]
        if not len(h):
            return {}
        key_of = {hash_: (kind, key) for hash_, kind, key in hashes}
        cuts = [0, *(np.flatnonzero(h[1:] != h[:-1]) + 1).tolist(), len(h)]
        sids, lasts = rows["story_id"].tolist(), rows["negative_last"].tolist()
        return {key_of[int(h[a])]: (sids[a:b], lasts[a:b]) for a, b in itertools.pairwise(cuts)}

    def stories(self, ids: Sequence[str]) -> list[Story]:
        # Strings, not lists (migration 0014): DuckDB reads every row of story_live to find these, and list
        # columns cost several times as much to read.
        columns = ("story_id, epoch_us(first_article), epoch_us(last_article), size, terms, weights, entities, "
                   "languages")
        if not ids:
            return []
        if len(ids) <= _FEW_IDS:
            # A batch's later reads (a candidate its first read missed) are of one or two stories: as parameters,
            # a read by key costs a third of a registered table's join.
            rows = self.conn.execute(f"select {columns} from story_live where story_id in "
                                     f"({', '.join('?' * len(ids))})", [int(i) for i in ids]).fetchall()
        else:
            with _ids(self.conn, "q_story_ids", [int(i) for i in ids]):
                rows = self.conn.execute(f"select {columns} from story_live semi join q_story_ids q "
                                         "on story_id = q.id").fetchall()
        return [Story(str(sid), _from_us(first), _from_us(last), size, functools.partial(_centroid, terms, weights),
                      json.loads(entities), json.loads(languages))
                for sid, first, last, size, terms, weights, entities, languages in rows]


_FEW_IDS = 4  # up to this many ids are bound as parameters (0.2-0.4 ms each), more are a registered table


def _centroid(terms: str, weights: str) -> dict[str, int]:
    return dict(zip(terms.split(), map(int, weights.split()), strict=True)) if terms else {}


@contextmanager
def _ids(conn: duckdb.DuckDBPyConnection, name: str, ids: Sequence[int]) -> Iterator[None]:
    """`ids` as a registered one-column table `name(id)` for the statements inside: binding a list parameter costs
    about 0.2 ms an element (DuckDB's Python binding tries to import pandas for each), 100 ms for a batch's
    stories, where a registered Arrow table costs a few."""
    conn.register(name, pa.table({"id": pa.array(ids, pa.int64())}))
    try:
        yield
    finally:
        conn.unregister(name)


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
_KEY = pa.schema([("key", pa.string()), ("kind", pa.string()), ("story_id", pa.int64()), ("last_article", pa.int64())])
_LOOKUP = pa.schema([("key", pa.string()), ("kind", pa.string())])
_LIVE = pa.schema([("story_id", pa.int64()), ("first_article", pa.timestamp("us", tz="UTC")),
                   ("last_article", pa.timestamp("us", tz="UTC")), ("size", pa.int32()),
                   ("terms", pa.string()), ("weights", pa.string()),
                   ("entities", pa.string()), ("languages", pa.string())])
_DF = pa.schema([("term", pa.string()), ("df", pa.int32())])


def place(conn: duckdb.DuckDBPyConnection, items: Sequence[StoryItem], urls: dict[str, str],
          settings: StorySettings, now: datetime, run_id: str | None = None) -> StoryChanges:
    """Place a batch's articles (in canonical order) and copies (with their original's story), inside the caller's
    transaction. `urls` maps each item's article_id to its URL. Articles already placed are skipped."""
    changes = StoryChanges()
    ids = [int(i.article_id) for i in items]
    if not ids:
        return changes
    with _ids(conn, "q_batch_ids", ids):
        placed = {r[0] for r in conn.execute(
            "select article_id from story_articles semi join q_batch_ids q on article_id = q.id").fetchall()}
    todo = [i for i in items if int(i.article_id) not in placed]
    originals = sorted((i for i in todo if i.copy_of is None), key=order_key)
    copies = sorted((i for i in todo if i.copy_of is not None), key=order_key)
    docs, seq, newest = _state(conn)
    index = StoryIndex(settings, docs=docs, backing=WarehouseBacking(conn))
    index.prefetch(originals)
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
    with _ids(conn, "q_original_ids", ids):
        rows = conn.execute("select article_id, story_id from story_articles semi join q_original_ids q "
                            "on article_id = q.id").fetchall()
    return {str(a): str(s) for a, s in rows}


def flush(conn: duckdb.DuckDBPyConnection, index: StoryIndex, members: list[dict[str, Any]],
          state: tuple[int, int, datetime | None], settings: StorySettings, now: datetime) -> None:
    """Write what placing changed: members, document frequencies, the live state of changed stories, the
    counters, the `stories` rows of touched stories; then prune stories no article can join any more."""
    dirty = sorted(int(s) for s in index.dirty_stories)
    _register(conn, "q_members", members, _MEMBER)
    terms = sorted(index.dirty_df)
    # Built by column, not from a dict per row: a batch writes thousands of frequencies and postings.
    conn.register("q_df", pa.Table.from_arrays([pa.array(terms, pa.string()),
                                                pa.array([index.df[t] for t in terms], pa.int32())], schema=_DF))
    live = [index.stories[str(s)] for s in dirty]
    _register(conn, "q_live", [{"story_id": int(s.story_id), "first_article": s.first, "last_article": s.last,
                                "size": s.size, "terms": " ".join(s.terms),
                                "weights": " ".join(map(str, s.terms.values())),
                                "entities": json.dumps(s.entities), "languages": json.dumps(s.languages)}
                               for s in live], _LIVE)
    keys: list[str] = []
    kinds: list[str] = []
    owners: list[int] = []
    lasts: list[int] = []
    for s in live:
        for kind, names in (("t", s.terms), ("e", s.entities)):
            keys.extend(names)
            kinds.extend([kind] * len(names))
            owners.extend([int(s.story_id)] * len(names))
            lasts.extend([epoch_us(s.last)] * len(names))
    conn.register("q_keys", pa.Table.from_arrays([pa.array(keys, pa.string()), pa.array(kinds, pa.string()),
                                                  pa.array(owners, pa.int64()), pa.array(lasts, pa.int64())],
                                                 schema=_KEY))
    try:
        conn.execute("insert into story_articles by name select * from q_members")
        # A merge on the term (as writer.upsert, it holds on a DuckLake, which has no key constraints): a delete of
        # thousands of keyed rows then their insert cost 20-50 times more.
        conn.execute("merge into story_df t using q_df r on t.term = r.term "
                     "when matched then update set df = r.df when not matched then insert by name")
        conn.execute("delete from story_live where story_id in (select story_id from q_live)")
        conn.execute("insert into story_live by name select * from q_live")
        conn.execute("delete from story_keys where story_id in (select story_id from q_live)")
        conn.execute("insert into story_keys by name select md5_number_upper(kind || key) as h, * from q_keys")
    finally:
        for name in ("q_members", "q_df", "q_live", "q_keys"):
            conn.unregister(name)
    conn.execute("delete from story_state")
    conn.execute("insert into story_state values (?, ?, ?)", list(state))
    tops = {int(s.story_id): [e for e, _ in sorted(s.entities.items(), key=lambda kv: (-kv[1], kv[0]))]
            [:_TOP_ENTITIES] for s in live}
    summarise(conn, sorted({m["story_id"] for m in members}), tops, now)
    if state[2] is not None:
        # Separate from the deletes above: `story_id in (...) or last_article < $h` measured twice their sum (the
        # disjunction is no semi-join), and the time bound alone skips row groups (rows are appended in time order).
        horizon = days_before(state[2], 2 * settings.window_days)
        conn.execute("delete from story_keys where last_article < $h", {"h": epoch_us(horizon)})
        conn.execute("delete from story_live where last_article < $h", {"h": horizon})


def summarise(conn: duckdb.DuckDBPyConnection, story_ids: list[int], tops: dict[int, list[str]], now: datetime
              ) -> None:
    """(Re)write the `stories` rows of `story_ids` from their members; top entities from `tops` where given,
    else kept."""
    if not story_ids:
        return
    conn.register("q_tops", pa.Table.from_pylist(
        [{"story_id": k, "top_entities": v} for k, v in tops.items()],
        schema=pa.schema([("story_id", pa.int64()), ("top_entities", pa.list_(pa.string()))])))
    try:
        with _ids(conn, "q_summary_ids", story_ids):
            conn.execute("""
                create or replace temp table q_stories as
                with members as (
                    select m.story_id,
                           any_value(m.title) filter (where m.article_id = m.story_id) as title,
                           min(m.published) as first_seen, max(m.published) as last_seen,
                           count(*)::integer as articles,
                           count(*) filter (where m.copy_of is null)::integer as originals,
                           count(distinct m.outlet)::integer as outlets,
                           list_sort(list_distinct(list(m.language) filter (where m.language is not null)))
                               as languages
                    from story_articles m semi join q_summary_ids q on m.story_id = q.id
                    group by m.story_id
                )
                select q.*, coalesce(t.top_entities, s.top_entities) as top_entities,
                       $now::timestamptz as updated_at
                from members q left join q_tops t using (story_id) left join stories s using (story_id)
                """, {"now": now})
    finally:
        conn.unregister("q_tops")
    conn.execute("delete from stories where story_id in (select story_id from q_stories)")
    conn.execute("insert into stories by name select * from q_stories")
    conn.execute("drop table q_stories")


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
