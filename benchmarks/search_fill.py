"""Warehouses of n articles made from real texts for the search benchmark (benchmarks/bench_search.py).

Each article is made of 8-20 sentences of the real pages (the fundus extraction corpus and the seed story) of one
language, drawn at random, so every article is a new mix of real sentences and the vocabulary and its frequencies
are those of real news text; on top, 2-6 made-up names per article (two halves of real capitalised words), drawn
from 500,000 of them with a Zipf law, as the long tail of names and places a real archive has (the fundus pages
alone have ~60,000 distinct words). Everything is drawn from a seed per article, so `article(i)` gives the same
text every time (known-item queries are made from it).

Past BASE articles (1M), the articles after the first BASE are recombined in SQL from those (DuckDB's threads,
where Python would take most of an hour on two shared cores): the sentences of one base article from a place
given by the article's number, a sentence of another article of the same language, and two made-up names drawn
with a power law; the text hash is computed by DuckDB.

Filled warehouses are cached outside the repository (NEWSFLOW_BENCH_CACHE, default /work/benchcache) as
search-<n>-v<VERSION>.duckdb, with their index once built; a measurement works on a copy.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.corpora import fundus_pages
from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.warehouse import database
from flows.warehouse.search_segments import read_head

VERSION = 1
NAMES = 500_000
BASE = 100_000
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-ÞА-Я0-9\"'«„])")
_CAP = re.compile(r"\b[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]{4,}\b")
_CHUNK = 50_000


@dataclass(frozen=True)
class Pool:
    langs: list[str]  # language per page-group, weighted as the corpus
    sentences: dict[str, list[str]]
    names: list[str]


def cache_dir() -> Path:
    return Path(os.environ.get("NEWSFLOW_BENCH_CACHE", "/work/benchcache"))


@cache
def pool() -> Pool:
    """The sentences of the real pages per language, and the made-up names."""
    texts: list[tuple[str, str]] = [(p.lang, p.body) for p in fundus_pages() if p.body.strip()]
    for seed in sorted((PROJECT_ROOT / "seeds").glob("*.txt")):
        texts.append(("en", "\n".join(seed.read_text(encoding="utf-8").splitlines()[1:])))
    sentences: dict[str, list[str]] = {}
    for lang, body in texts:
        for para in body.split("\n"):
            sentences.setdefault(lang, []).extend(s.strip() for s in _SENTENCE.split(para) if len(s.strip()) > 20)
    caps = sorted({w for _, body in texts for w in _CAP.findall(body)})
    rng = random.Random(24)
    names = set()
    while len(names) < NAMES:
        a, b = rng.choice(caps), rng.choice(caps)
        names.add(a[: len(a) // 2 + 1] + b[len(b) // 2:].lower())
    return Pool([lang for lang, _ in texts if sentences.get(lang)], sentences, sorted(names))


def article(i: int) -> tuple[str, str, str, str]:
    """(url, language, title, text) of article i."""
    p = pool()
    rng = random.Random(i * 7919 + 24)
    lang = p.langs[rng.randrange(len(p.langs))]
    sents = p.sentences[lang]
    picked = [sents[rng.randrange(len(sents))] for _ in range(rng.randint(8, 20))]
    ranks = np.random.default_rng(i).zipf(1.15, rng.randint(2, 6)) % NAMES
    names = [p.names[int(r)] for r in ranks]
    for n, name in enumerate(names):  # each name into a sentence of its own choosing
        at = rng.randrange(len(picked))
        picked[at] = f"{picked[at]} {name} {rng.randint(2, 2_000)}." if n % 2 else f"{name}: {picked[at]}"
    paras = [" ".join(picked[k:k + 4]) for k in range(0, len(picked), 4)]
    title = f"{names[0]} {picked[0][:80]}"
    return f"bench:{i}", lang, title, "\n".join(paras)


def insert(settings: Settings, start: int, n: int) -> None:
    """Store articles start..start+n-1 (no dedup, no entities), in chunks."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        for lo in range(start, start + n, _CHUNK):
            docs = [article(i) for i in range(lo, min(lo + _CHUNK, start + n))]
            ids = list(range(lo, lo + len(docs)))
            data = pa.table({
                "article_id": ids, "url": [d[0] for d in docs], "title": [d[2] for d in docs],
                "language": [d[1] or None for d in docs], "text": [d[3] for d in docs],
                "text_hash": [hashlib.sha256(d[3].encode()).hexdigest() for d in docs],
                "published_at": [base + timedelta(minutes=i) for i in ids]})
            conn.register("bench_rows", data)
            conn.execute("insert into articles (article_id, url, title, language, text, text_hash, published_at, "
                         "body_source, n_shingles, n_samples, run_id, loaded_at) select *, 'extracted', 0, 0, "
                         "'bench', now() from bench_rows")
            conn.unregister("bench_rows")


def _recombined(settings: Settings, n: int) -> None:
    """Articles 0..n-1: the first BASE copied from the cached warehouse of BASE articles, the rest recombined from
    them in SQL."""
    base = cache_dir() / f"search-{BASE}-v{VERSION}.duckdb"
    if not base.exists():
        insert(load_settings(warehouse=base), 0, BASE)
    names = pa.table({"k": pa.array(range(NAMES), pa.int64()), "name": pool().names})
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        conn.execute("set enable_progress_bar = false")
        conn.execute(f"attach {database_literal(base)} as base (read_only)")
        conn.execute("insert into articles select * from base.articles")
        conn.execute("""create temp table b as
            select article_id as k, language, string_split(replace(text, chr(10), ' '), '. ') as s,
                   row_number() over (partition by language order by article_id) - 1 as lk,
                   count(*) over (partition by language) as ln
            from base.articles""")
        conn.register("bench_names", names)
        conn.execute("create temp table names as select * from bench_names")
        conn.execute("detach base")
        for lo in range(BASE, n, 200_000):
            conn.execute(f"""insert into articles (article_id, url, title, language, text, text_hash, published_at,
                                                   body_source, n_shingles, n_samples, run_id, loaded_at)
                with r as (select i, (hash(i) % 1000000007)::bigint as h1,
                                  (hash(i * 31 + 7) % 1000000007)::bigint as h2,
                                  (hash(i * 17 + 3) % 1000000)::bigint as h3,
                                  (hash(i * 13 + 5) % 1000000)::bigint as h4
                           from range({lo}, {min(n, lo + 200_000)}) t(i)),
                x as (
                    select r.i, b1.language,
                           array_to_string(list_concat(b1.s[(1 + r.i % len(b1.s)):], b1.s[:(r.i % len(b1.s))],
                                                       [b2.s[1 + r.h2 % len(b2.s)]]), '. ')
                           || '. ' || n1.name || ' ' || (r.i % 1997) || '. ' || n2.name || '.' as text,
                           n1.name || ' ' || b1.s[1][:80] as title
                    from r join b b1 on b1.k = r.h1 % {BASE}
                    join b b2 on b2.language is not distinct from b1.language and b2.lk = r.h2 % b1.ln
                    join names n1 on n1.k = floor(pow((r.h3 % 1000000) / 1e6, 4) * {NAMES})::bigint
                    join names n2 on n2.k = floor(pow((r.h4 % 1000000) / 1e6, 4) * {NAMES})::bigint)
                select i, 'bench:' || i, title, language, text, sha256(text),
                       timestamptz '2026-01-01 00:00:00+00' + to_minutes(i), 'extracted', 0, 0, 'bench', now()
                from x""")


def database_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def warehouse_cached(n: int) -> tuple[Settings, float | None]:
    """The cached warehouse of n articles with its index (filled and built the first time), and the seconds the
    index build took when it was built now (None when it came from the cache)."""
    cached = cache_dir() / f"search-{n}-v{VERSION}.duckdb"
    settings = load_settings(warehouse=cached)
    built = None
    if read_head(settings.warehouse.search_path) is None:  # none yet, or of an older format: built (again)
        cached.parent.mkdir(parents=True, exist_ok=True)
        if not cached.exists():  # filled under another name, so a fill cut short is never taken for a whole one
            part = cached.with_name(cached.stem + "-part.duckdb")
            part.unlink(missing_ok=True)
            if n <= BASE:
                insert(load_settings(warehouse=part), 0, n)
            else:
                _recombined(load_settings(warehouse=part), n)
            os.replace(part, cached)
        from flows.warehouse import search_index
        from flows.warehouse.search_segments import UPGRADABLE

        # An index of the previous format only lacks its postings files: a refresh writes them (minutes at 1M,
        # where a rebuild takes most of an hour).
        older = read_head(settings.warehouse.search_path, (UPGRADABLE,)) is not None
        built = search_index.refresh(settings, rebuild=not older).seconds
    return settings, built


def warehouse(n: int, work: Path) -> tuple[Settings, float | None]:
    """A copy in `work` of the cached warehouse of n articles with its index (warehouse_cached)."""
    settings, built = warehouse_cached(n)
    work.mkdir(parents=True, exist_ok=True)
    for src in (settings.warehouse.path, settings.warehouse.search_path):
        shutil.copyfile(src, work / src.name)
    shutil.copytree(settings.warehouse.search_segments_dir, work / settings.warehouse.search_segments_dir.name)
    return load_settings(warehouse=work / settings.warehouse.path.name), built
