"""The immutable segments of the search index and its head file (flows/warehouse/search_index.py). No Prefect.

A segment is a DuckDB file, written once and never changed, with a text file beside it (`<name>.text`, written
first): `docs` (the articles it indexes, with their title, text, language group `idx` and length in words `len`;
the text for the SQL macro and for merges), `texts` (where each article's metadata, title and text stand in the
text file, from which `newsflow search` reads its results and phrase candidates) and `postings` (h, article_id,
tf): one row per stemmed word of each article, `h` the word's key (`term_key`: a hash of its language group and
stem), sorted by h, so DuckDB's zone maps read only the row groups of the query's words. In a packed segment
(PACKED_STORAGE) the postings are stored as `post` (h, dn, tf: the article's number in the segment) and
`postings` is a view over it; its texts are compressed, in the DuckDB file and in the text file. Words are what
the query side makes of its text (flows/warehouse/search_plan.py): lower case, split on anything that is not a
letter, digit or combining mark, accents stripped, stemmed with the Snowball stemmer of the article's language group
(INDEXES) by the fts extension's `stem`; no stop words.

The head file (`<stem>.search.duckdb`) names the segments that make the index now, the articles of those segments
readers must skip (`tombstones`: deleted, demoted to a copy, or stored again with another text), the BM25
statistics of the live articles per language group (`stats`: their number and total length; a word's document
frequency is counted at query time from the live postings), and the current copy counts and feed tags. It is
small and rewritten at each refresh (a temporary file renamed over it), so the head and the segments it names
are always one consistent state.
"""

from __future__ import annotations

import contextlib
import functools
import json
import mmap
import os
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

from flows.warehouse import lake, search_postings
from flows.warehouse.staging import fsync

# 3: each segment has its texts in a file of their own (`<name>.text`, TEXTS), so a reader reads the texts of its
# results and phrase candidates by offset instead of a DuckDB scan per article; an index of format 2 is rebuilt.
# 4: each segment also has its postings file (`<name>.post`, flows/warehouse/search_postings.py), which
# `newsflow search` scores with numpy; an index of format 3 is upgraded in place by the next refresh (`upgrade`).
# Segments written since 2026-12-07 are packed (PACKED_STORAGE below); older ones of format 4 are read as they
# are, and are packed when a merge or a rebuild rewrites them, so an upgrade rebuilds nothing.
FORMAT = 4
UPGRADABLE = 3
# index name -> Snowball stemmer; a language without its own index goes to `other` (no stemming).
INDEXES = {"en": "english", "fr": "french", "other": "none"}
# How the index splits lower-cased text into words, whose accents it then strips (combining marks stay in a word).
SPLIT = r"[^\p{L}\p{N}\p{M}]+"
_EXTENSION_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def load_fts(conn: duckdb.DuckDBPyConnection) -> None:
    """Load the fts extension (for `stem`) from its PyPI wheel by path (never downloaded)."""
    conn.execute(f"load '{str(lake.extension_file('fts')).replace(chr(39), chr(39) * 2)}'")


# A packed segment (the half of the index's disk that was text stored plainly and 64-bit ids repeated per posting):
# - its DuckDB file is written in a storage version that compresses long strings with zstd (DuckDB picks it for
#   `docs.text` by itself; about 2.2x on real news text), which DuckDB 1.2 and later read;
# - its postings are stored by the article's number in the segment (`post`: h, dn, tf; `docs.dn`, the article's
#   rank by id, as in the postings file) instead of its 64-bit id, about a third of the bytes; the view `postings`
#   (h, article_id, tf) gives readers the columns an unpacked segment's table has;
# - its text file holds each text zstd-compressed (TEXT_CODEC, flows/warehouse/search_postings.py), about 2x.
PACKED_STORAGE = "v1.2.0"
TEXT_CODEC = "zstd"
_TEXT_LEVEL = 3
# The columns of `docs` in every segment, packed or not (a packed one also has `dn`).
DOC_COLUMNS = "article_id, idx, len, url, title, feed, language, date, loaded_at, hkey, title_text, text"


def plain(path: Path | str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with autoload off and no progress bar (a refresh runs inside a logged run); a file it
    creates is written in PACKED_STORAGE."""
    config: dict[str, object] = {**_EXTENSION_CONFIG, "storage_compatibility_version": PACKED_STORAGE}
    conn = duckdb.connect(str(path), read_only=read_only, config=config)
    conn.execute("set enable_progress_bar = false")
    return conn


def connect(path: Path | str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with autoload off and fts loaded."""
    conn = plain(path, read_only=read_only)
    try:
        load_fts(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stemmer_expr(idx: str) -> str:
    """SQL: the stemmer of the language group in column `idx`."""
    cases = " ".join(f"when {lit(k)} then {lit(v)}" for k, v in INDEXES.items() if k != "other")
    return f"(case {idx} {cases} else {lit(INDEXES['other'])} end)"


def index_expr(column: str) -> str:
    """SQL: the language group of a language column (flows.warehouse.search_index.index_name)."""
    keys = ", ".join(lit(k) for k in INDEXES if k != "other")
    low = f"lower(split_part(coalesce({column}, ''), '-', 1))"
    return f"(case when {low} in ({keys}) then {low} else 'other' end)"


def words_expr(text: str) -> str:
    """SQL: the words of `text` as the index splits it, before their accents are stripped (a word may be '')."""
    return f"regexp_split_to_array(lower({text}), {lit(SPLIT)})"


def term_key(idx: str, stemmed: str) -> str:
    """SQL: the key of a stemmed word in language group `idx` in the postings: 64 bits of its MD5 (stable across
    DuckDB versions; two words of one group share a key with a probability of about n^2 / 2^65 for n words)."""
    return f"md5_number_lower({idx} || ' ' || {stemmed})"


def new_name() -> str:
    return uuid.uuid4().hex[:16]


def text_file(folder: Path, name: str) -> Path:
    """The file of a segment's texts (TEXTS): each article's title then text, UTF-8, at the offset `texts` holds."""
    return folder / f"{name}.text"


# A segment's `texts` table (article_id, pos, meta_bytes, title_bytes, text_bytes, date): where each article's
# record stands in its text file: its metadata as JSON (url, title, feed, language), then its title and text, UTF-8.
# DuckDB reads one row of a table of long strings in milliseconds (it decodes a whole vector of them); a read at an
# offset takes microseconds, so a reader gets its results and phrase candidates from here.
TEXTS = "texts"
_TEXT_BATCH = 20_000


def pack_text(codec: pa.Codec, text: str) -> bytes:
    """A text as a packed text file holds it: its length in bytes (4, little-endian), then the compressed bytes."""
    raw = text.encode()
    return len(raw).to_bytes(4, "little") + (codec.compress(raw, asbytes=True) if raw else b"")


@functools.cache
def _codec(name: str) -> pa.Codec:
    return pa.Codec(name)


def unpack_text(codec: str | None, data: bytes) -> str:
    """The text of a text file's record as `pack_text` wrote it with `codec` (None: as it stands)."""
    if codec is None:
        return data.decode()
    size = int.from_bytes(data[:4], "little")
    return _codec(codec).decompress(data[4:], decompressed_size=size, asbytes=True).decode() if size else ""


def unpack_record(codec: str | None, data: bytes, meta: int, title: int) -> tuple[bytes, str, str]:
    """(meta JSON bytes, title, text) of one text-file record; ValueError or OSError (UTF-8 or the codec refusing
    it) when its bytes were overwritten."""
    return data[:meta], data[meta:meta + title].decode(), unpack_text(codec, data[meta + title:])


def _write_texts(conn: duckdb.DuckDBPyConnection, path: Path, codec_name: str | None = TEXT_CODEC) -> None:
    """Write the record of every row of `docs` into `path` (its text packed with `codec_name`: pack_text; None:
    plainly, as before packing) and where each stands into the table `texts`."""
    ids: list[int] = []
    pos: list[int] = []
    sizes: list[tuple[int, int, int]] = []
    at = 0
    codec = pa.Codec(codec_name, compression_level=_TEXT_LEVEL) if codec_name else None
    with path.open("wb") as out:
        reader = conn.execute("select article_id, url, title, feed, language, title_text, text from docs"
                              ).fetch_record_batch(_TEXT_BATCH)
        for batch in reader:
            chunk = []
            for article_id, url, title, feed, language, title_text, text in zip(
                    *(c.to_pylist() for c in batch.columns), strict=True):
                m = json.dumps({"url": url, "title": title, "feed": feed, "language": language},
                               ensure_ascii=False).encode()
                t, x = title_text.encode(), pack_text(codec, text) if codec else text.encode()
                ids.append(article_id)
                pos.append(at)
                sizes.append((len(m), len(t), len(x)))
                chunk += (m, t, x)
                at += len(m) + len(t) + len(x)
            out.write(b"".join(chunk))
        out.flush()
        os.fsync(out.fileno())
    conn.register("segment_texts", pa.table({
        "article_id": pa.array(ids, pa.int64()), "pos": pa.array(pos, pa.int64()),
        "meta_bytes": pa.array([z[0] for z in sizes], pa.int32()),
        "title_bytes": pa.array([z[1] for z in sizes], pa.int32()),
        "text_bytes": pa.array([z[2] for z in sizes], pa.int32())}))
    conn.execute(f"create table {TEXTS} as select t.*, d.date from segment_texts t join docs d using (article_id) "
                 "order by article_id")
    conn.unregister("segment_texts")


def _publish(tmp: Path, target: Path) -> None:
    fsync(tmp)
    os.replace(tmp, target)
    fsync(target.parent)


def build(folder: Path, source: str, default: str) -> tuple[str, int]:
    """A new segment in `folder` of the originals in `source` (a SQL relation with the columns of
    warehouse/queries/search_new.sql); returns its name and number of articles."""
    name = new_name()
    tmp = folder / f"{name}.tmp"
    language = f"coalesce(language, {lit(default)})"
    with contextlib.closing(connect(tmp)) as conn:
        words = words_expr("coalesce(title, '') || ' ' || coalesce(text, '')")
        # In article order (the source's), so docs need no sort: a result's text is read by zone maps on its id.
        conn.execute(f"""create temp table d0 as
            select article_id, {index_expr(language)} as idx, url, title, feed, language, date, loaded_at, hkey,
                   coalesce(title, '') as title_text, coalesce(text, '') as text, {words} as words
            from {source}""")
        conn.execute("create temp table tok as select idx, article_id, unnest(words) as w from d0")
        # Each distinct word stemmed once (stemming every occurrence is most of the time of a naive build), and
        # named by a 64-bit hash of (group, stem): postings sorted by an integer sort and group several times
        # faster than by a string.
        conn.execute(f"""create temp table vocab as
            select idx, w, {term_key('idx', f"stem(strip_accents(w), {stemmer_expr('idx')})")} as h
            from (select distinct idx, w from tok where w <> '')""")
        _create_docs(conn, """select article_id, idx, len(list_filter(words, w -> w <> ''))::integer as len,
            url, title, feed, language, date, loaded_at, hkey, title_text, text from d0""")
        _create_postings(conn, """select h, article_id, count(*)::integer as tf from tok join vocab using (idx, w)
            group by h, article_id""")
        conn.execute("drop table tok; drop table vocab; drop table d0")
        _write_texts(conn, folder / f"{name}.text.tmp")
        search_postings.write(conn, folder / f"{name}.post.tmp", list(INDEXES), text_codec=TEXT_CODEC)
        n = _finish(conn, name)
    _publish_segment(folder, name, tmp)
    return name, n


def merge(folder: Path, sources: list[str], tombstones: pa.Table) -> tuple[str, int]:
    """A new segment of the live articles of segments `sources` (their postings copied, never re-read from text);
    `tombstones` (seg, article_id): the articles to leave out."""
    name = new_name()
    tmp = folder / f"{name}.tmp"
    with contextlib.closing(plain(tmp)) as conn:
        conn.register("merge_tombstones", tombstones)
        for i, src in enumerate(sources):
            conn.execute(f"attach {lit(str(folder / f'{src}.duckdb'))} as m{i} (read_only)")
        dead = "not exists (select 1 from merge_tombstones t where t.seg = {seg} and t.article_id = x.article_id)"
        docs = " union all ".join(f"select {DOC_COLUMNS} from m{i}.docs x where {dead.format(seg=lit(s))}"
                                  for i, s in enumerate(sources))
        posts = " union all ".join(f"select h, article_id, tf from m{i}.postings x where {dead.format(seg=lit(s))}"
                                   for i, s in enumerate(sources))
        _create_docs(conn, docs)
        _create_postings(conn, posts)
        for i in range(len(sources)):
            conn.execute(f"detach m{i}")
        _write_texts(conn, folder / f"{name}.text.tmp")
        search_postings.write(conn, folder / f"{name}.post.tmp", list(INDEXES), text_codec=TEXT_CODEC)
        n = _finish(conn, name)
    _publish_segment(folder, name, tmp)
    return name, n


def _create_docs(conn: duckdb.DuckDBPyConnection, rows: str) -> None:
    """`docs` of a packed segment from `rows` (DOC_COLUMNS), in id order, each article numbered by it (`dn`)."""
    conn.execute(f"""create table docs as
        select {DOC_COLUMNS}, (row_number() over (order by article_id) - 1)::integer as dn
        from ({rows}) order by article_id""")


def _create_postings(conn: duckdb.DuckDBPyConnection, rows: str) -> None:
    """`post` (h, dn, tf) of a packed segment from `rows` (h, article_id, tf), sorted by h so a query's zone maps
    read only its words' row groups, and the view `postings` (h, article_id, tf) over it."""
    conn.execute(f"""create table post as
        select p.h, d.dn, p.tf from ({rows}) p join docs d using (article_id) order by p.h, d.dn""")
    # Unqualified names in a view bind in the view's own database, so the view works in an attached segment.
    conn.execute("create view postings as select p.h, d.article_id, p.tf from post p join docs d using (dn)")


def _publish_segment(folder: Path, name: str, tmp: Path) -> None:
    """Its text and postings files first, then the segment: a segment file never stands without them."""
    os.replace(folder / f"{name}.text.tmp", text_file(folder, name))
    os.replace(folder / f"{name}.post.tmp", search_postings.post_file(folder, name))
    _publish(tmp, folder / f"{name}.duckdb")


def upgrade(folder: Path, name: str) -> None:
    """Write the postings file of a segment of format UPGRADABLE from its tables (a few seconds per 100,000
    articles, where a rebuild re-reads every text); nothing when it has one already."""
    target = search_postings.post_file(folder, name)
    if target.exists():
        return
    tmp = folder / f"{name}.post.tmp"
    with contextlib.closing(plain(folder / f"{name}.duckdb", read_only=True)) as conn:
        search_postings.write(conn, tmp, list(INDEXES),
                              text_codec=TEXT_CODEC if search_postings.is_packed(conn) else None)
    os.replace(tmp, target)
    fsync(folder)


def _finish(conn: duckdb.DuckDBPyConnection, name: str) -> int:
    n = conn.execute("select count(*) from docs").fetchone()[0]
    conn.execute("create table stats as select idx, count(*)::bigint as n, sum(len)::bigint as total_len "
                 "from docs group by idx")
    conn.execute("create table meta as select ?::integer as format, ?::varchar as name, ?::bigint as articles",
                 [FORMAT, name, n])
    conn.execute("checkpoint")
    return int(n)


def _attached(conn: duckdb.DuckDBPyConnection, folder: Path, segments: list[str]) -> list[str]:
    """Attach each segment read-only (k0, k1, ...) and return their aliases."""
    for i, seg in enumerate(segments):
        conn.execute(f"attach {lit(str(folder / f'{seg}.duckdb'))} as k{i} (read_only)")
    return [f"k{i}" for i in range(len(segments))]


def _alive(seg: str, alias: str) -> str:
    return (f"not exists (select 1 from live_tombstones t where t.seg = {lit(seg)} "
            f"and t.article_id = {alias}.article_id)")


def live_keys(folder: Path, segments: list[str], tombstones: pa.Table, ids: pa.Table | None = None) -> pa.Table:
    """(seg, article_id, hkey, idx, len) of every live article of `segments`; with `ids` (a table with an
    `article_id` column), of those articles only."""
    if not segments or (ids is not None and not ids.num_rows):
        return pa.table({"seg": pa.array([], pa.string()), "article_id": pa.array([], pa.int64()),
                         "hkey": pa.array([], pa.string()), "idx": pa.array([], pa.string()),
                         "len": pa.array([], pa.int32())})
    dead = _with_tombstones(tombstones)
    with contextlib.closing(plain()) as conn:
        conn.register("live_tombstones", tombstones)
        wanted = ["true"]
        if ids is not None:
            conn.register("live_ids", ids.select(["article_id"]))
            wanted = ["x.article_id in (select article_id from live_ids)"]
        parts = [f"select {lit(seg)} as seg, article_id, hkey, idx, len from {k}.docs x "
                 f"where {' and '.join(wanted + ([_alive(seg, 'x')] if seg in dead else []))}"
                 for seg, k in zip(segments, _attached(conn, folder, segments), strict=True)]
        return conn.execute(" union all ".join(parts)).fetch_arrow_table()


def _with_tombstones(tombstones: pa.Table) -> set[str]:
    return set(tombstones["seg"].unique().to_pylist()) if tombstones.num_rows else set()


def live_stats(folder: Path, segments: list[str], tombstones: pa.Table) -> pa.Table:
    """(idx, n, total_len) of the live articles of `segments`, for every language group: each segment's own
    statistics less its tombstoned articles', so a refresh never reads every article's key."""
    with contextlib.closing(plain()) as conn:
        conn.register("live_tombstones", tombstones)
        parts = ["select idx, 0::bigint as n, 0::bigint as total_len from (select unnest(?) as idx)"]
        dead = _with_tombstones(tombstones)
        for seg, k in zip(segments, _attached(conn, folder, segments), strict=True):
            parts.append(f"select idx, n, total_len from {k}.stats")
            if seg in dead:
                parts.append(f"select idx, -count(*), -sum(len) from {k}.docs x where not ({_alive(seg, 'x')}) "
                             "group by idx")
        return conn.execute(f"select idx, sum(n)::bigint as n, sum(total_len)::bigint as total_len "
                            f"from ({' union all '.join(parts)}) group by idx order by idx",
                            [list(INDEXES)]).fetch_arrow_table()


def write_head(path: Path, *, gen: str, segments: list[tuple[str, int]], tombstones: pa.Table, stats: pa.Table,
               copies: pa.Table, feeds: pa.Table, mark: dict[str, int | None]) -> None:
    """Write the head file (temporary file, renamed over `path`): segments, tombstones, `stats` (live_stats),
    copies, feeds, and `mark`: the warehouse's load sequence number and article count the index is current with
    (search_index.refresh's next comparison starts from them)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with contextlib.closing(plain(tmp)) as conn:
        conn.register("h_segments", pa.table({"pos": pa.array(range(len(segments)), pa.int32()),
                                              "name": pa.array([s for s, _ in segments], pa.string()),
                                              "articles": pa.array([n for _, n in segments], pa.int64())}))
        conn.execute("create table segments as select * from h_segments order by pos")
        conn.register("h_tombstones", tombstones)
        conn.execute("create table tombstones as select seg::varchar as seg, article_id::bigint as article_id "
                     "from h_tombstones")
        conn.register("h_stats", stats)
        conn.execute("create table stats as select idx::varchar as idx, n::bigint as n, "
                     "total_len::bigint as total_len from h_stats")
        conn.register("h_copies", copies)
        conn.execute("create table copies as select article_id::bigint as article_id, copies::integer as copies "
                     "from h_copies")
        conn.register("h_feeds", feeds)
        conn.execute("create table feeds as select feed::varchar as feed, tags::varchar[] as tags from h_feeds")
        conn.execute("create table meta as select ?::integer as format, ?::varchar as gen, "
                     "(select sum(n) from stats)::bigint as articles, now() as built_at, "
                     "?::bigint as load_seq, ?::bigint as stored",
                     [FORMAT, gen, mark.get("load_seq"), mark.get("stored")])
        conn.execute("checkpoint")
    _publish(tmp, path)


def read_copies(path: Path) -> pa.Table:
    """The copy counts of the head file at `path`."""
    with contextlib.closing(plain(path, read_only=True)) as conn:
        return conn.execute("select article_id, copies from copies").fetch_arrow_table()


def problem(folder: Path, name: str, *, tables: bool = False) -> str | None:
    """Why the segment `name` cannot be read whole, or None: its postings file not whole, its text file shorter
    than its records, or (`tables`: the maintenance flow's check, 29 s at a million articles) a block of its DuckDB
    file unreadable, its articles not those of its postings file, or a record of its text file that does not
    decode. A file cut short or overwritten on disk is what this finds."""
    post_path, text_path = search_postings.post_file(folder, name), text_file(folder, name)
    try:
        post = search_postings.open_postings(post_path)
        size = text_path.stat().st_size
    except FileNotFoundError as exc:
        return f"{exc.filename} is missing"
    except search_postings.DamagedPostingsError as exc:
        return str(exc)
    if size < (end := search_postings.text_end(post)):
        return f"{text_path}: {size} bytes where its records need {end}"
    if tables:
        path = folder / f"{name}.duckdb"
        try:
            with contextlib.closing(plain(path, read_only=True)) as c:
                # Every block read, so DuckDB checks each one's checksum and a file cut short fails here rather than
                # in the next refresh: the counts alone come from the catalog (about 2 s at a million articles).
                docs = c.execute("select count(*), sum(length(text)) from docs").fetchone()[0]
                c.execute("select count(*), sum(tf) from post" if search_postings.is_packed(c)
                          else "select count(*), sum(tf) from postings").fetchall()
        except duckdb.Error as exc:
            return f"{path}: {str(exc).strip().splitlines()[0]}"
        if docs != len(post.ids):
            return f"{path}: {docs} articles where its postings file has {len(post.ids)}"
        try:
            _read_every_text(text_path, post)
        except (ValueError, OSError) as exc:  # a record overwritten: its text no longer decodes
            return f"{text_path}: {exc}"
    return None


def _read_every_text(path: Path, post: search_postings.Postings) -> None:
    """Decode every record of a segment's text file (what `newsflow search` reads of its results)."""
    codec = post.text_codec
    with path.open("rb") as f, contextlib.ExitStack() as stack:
        size = os.fstat(f.fileno()).st_size
        whole = stack.enter_context(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) if size else b""
        for pos, meta, title, text in zip(post.pos.tolist(), post.meta.tolist(), post.title.tolist(),
                                          post.text.tolist(), strict=True):
            end = pos + meta + title + text
            if end > size:
                raise ValueError(f"cut short at {size} bytes, a record needs {end}")
            json.loads(unpack_record(codec, whole[pos:end], meta, title)[0])


def read_head(path: Path, formats: tuple[int, ...] = (FORMAT,)
              ) -> tuple[dict[str, object], list[tuple[str, int]], pa.Table] | None:
    """(meta, [(segment, articles)], tombstones) of a head file; None when there is none or of another format than
    `formats`."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(plain(path, read_only=True)) as c:  # one configuration per file in a process
            cur = c.execute("select * from meta")
            meta = dict(zip([d[0] for d in cur.description], cur.fetchone() or (), strict=False))
            if meta.get("format") not in formats:
                return None
            rows = c.execute("select name, articles from segments order by pos").fetchall()
            segments = [(r[0], int(r[1])) for r in rows]
            tombstones = c.execute("select seg, article_id from tombstones").fetch_arrow_table()
    except duckdb.Error:
        return None
    return meta, segments, tombstones
