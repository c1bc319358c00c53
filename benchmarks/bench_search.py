"""Search benchmark (issue 24): known-item relevance over the real fundus pages and the seed story, and query
latency, refresh time and index size at a few thousand stored articles.

    python -m benchmarks.bench_search                                  # relevance + 10k articles
    NEWSFLOW_BENCH_SEARCH_SCALES=10000,100000 python -m benchmarks.bench_search
    python -m benchmarks.run search                                    # the same, as a section of `make bench`

Relevance: for each page, a query of 3-6 distinctive words of its text (in at most 3 pages of the set, 4+ letters,
drawn with a seed from the page id) must find it: MRR@10 and recall@10 per language. French is also scored with
the French stemmer against none, on the same words and on other inflections of them (a final s or e dropped, or
an s added), as a user would type them. Articles are written straight into a real warehouse (the index is measured,
not the loader) and searched through flows.warehouse.search as `newsflow search` does.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks.corpora import fundus_pages
from benchmarks.machine import header, table
from flows.core.searchquery import parse
from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.warehouse import database, search, search_index

_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Item:
    id: str
    lang: str  # as the page declares it ('' when it does not)
    title: str
    text: str


def items() -> list[Item]:
    """The fundus pages (expected titles and bodies) and the seed stories."""
    out = [Item(p.id, p.lang, p.title, p.body) for p in fundus_pages() if p.body.strip()]
    for seed in sorted((PROJECT_ROOT / "seeds").glob("*.txt")):
        lines = seed.read_text(encoding="utf-8").splitlines()
        body = "\n".join(lines[1:]).strip()  # the first line is `date YYYY-MM-DD ...`
        out.append(Item(f"seed/{seed.name}", "en", body.splitlines()[0][:200], body))
    return out


def fill(settings: Settings, docs: list[tuple[str, str, str, str]], start: int = 0) -> None:
    """Store (url, language, title, text) rows as articles of a real warehouse (no dedup, no entities)."""
    now = datetime.now(UTC)
    rows = {"article_id": [], "url": [], "title": [], "language": [], "text": [], "text_hash": []}
    for n, (url, lang, title, text) in enumerate(docs, start):
        rows["article_id"].append(n)
        rows["url"].append(url)
        rows["title"].append(title)
        rows["language"].append(lang or None)
        rows["text"].append(text)
        rows["text_hash"].append(hashlib.sha256(text.encode()).hexdigest())
    data = pa.table(rows)
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        conn.register("bench_rows", data)
        conn.execute("insert into articles (article_id, url, title, language, text, text_hash, body_source, "
                     "n_shingles, n_samples, run_id, loaded_at, published_at) select *, 'extracted', 0, 0, "
                     "'bench', $now, $now from bench_rows", {"now": now})


def distinctive_query(item: Item, df: Counter[str], *, seed: int = 24) -> list[str]:
    """3-6 words of the item's text, each in at most 3 items of the set, drawn with a seed from its id."""
    rng = random.Random(zlib.crc32(item.id.encode()) ^ seed)
    words = sorted({w for w in _WORD.findall(item.text) if len(w) >= 4 and not w.isdigit()}) or \
        sorted(set(_WORD.findall(item.text)))
    rare = [w for w in words if df[search.fold(w)] <= 3] or sorted(words, key=lambda w: df[search.fold(w)])[:6]
    return rng.sample(rare, min(len(rare), rng.randint(3, 6)))


def inflect(word: str) -> str:
    """Another inflection of a word, as a user might type it: a final s or e dropped, else an s added."""
    return word[:-1] if word[-1:].lower() in ("s", "e") and len(word) > 4 else word + "s"


def _rank(settings: Settings, words: list[str], target: str) -> int | None:
    text = " ".join(words)
    hits = search.search(settings.warehouse, parse(text), search.Filters(limit=10))
    urls = [h.url for h in hits]
    return urls.index(target) + 1 if target in urls else None


def _scores(ranks: list[int | None]) -> tuple[float, float]:
    mrr = sum(1 / r for r in ranks if r) / len(ranks)
    return mrr, sum(1 for r in ranks if r) / len(ranks)


def relevance(root: Path) -> str:
    data = items()
    df: Counter[str] = Counter(w for it in data for w in {search.fold(x) for x in _WORD.findall(it.text)})
    settings = load_settings(warehouse=root / "relevance.duckdb")
    fill(settings, [(f"bench:{it.id}", it.lang, it.title, it.text) for it in data])
    search_index.refresh(settings)
    queries = {it.id: distinctive_query(it, df) for it in data}
    by_lang: dict[str, list[int | None]] = {}
    for n, it in enumerate(data):
        by_lang.setdefault(it.lang or "(none)", []).append(_rank(settings, queries[it.id], f"bench:{it.id}"))
        if n % 50 == 0:
            print(f"bench search: relevance {n}/{len(data)}", file=sys.stderr, flush=True)
    groups = {k: v for k, v in by_lang.items() if k in ("en", "de", "fr")}
    groups["other languages"] = [r for k, v in by_lang.items() if k not in ("en", "de", "fr") for r in v]
    groups["all"] = [r for v in by_lang.values() for r in v]
    rows = [[k, len(v), f"{_scores(v)[0]:.3f}", f"{_scores(v)[1]:.3f}"] for k, v in groups.items()]
    out = (f"Known-item search over {len(data)} documents ({len(data) - 1} fundus pages with their expected text, "
           "and the seed story): the query is 3-6 words of the page found in at most 3 documents of the set "
           "(AND semantics). Target MRR >= 0.9.\n\n")
    out += table(["language", "queries", "MRR@10", "recall@10"], rows) + "\n"
    out += _french(settings, [it for it in data if it.lang == "fr"], queries)
    return out


def _french(settings: Settings, french: list[Item], queries: dict[str, list[str]]) -> str:
    rows = []
    for stemmer in ("french", "none"):
        search_index.INDEXES["fr"] = stemmer
        try:
            search_index.refresh(settings, rebuild=True)
            same = [_rank(settings, queries[it.id], f"bench:{it.id}") for it in french]
            other = [_rank(settings, [inflect(w) for w in queries[it.id]], f"bench:{it.id}") for it in french]
        finally:
            search_index.INDEXES["fr"] = "french"
        rows.append([stemmer, len(french), *(f"{x:.3f}" for x in (*_scores(same), *_scores(other)))])
    return ("\nFrench pages, the French stemmer against none (the same queries, and the queries with every word "
            "inflected otherwise):\n\n" + table(["fr stemmer", "queries", "MRR@10", "recall@10",
                                                 "MRR@10 inflected", "recall@10 inflected"], rows) + "\n")


def _variants(data: list[Item], n: int, start: int = 0) -> list[tuple[str, str, str, str]]:
    """n articles made from the real texts: a page's paragraphs rotated, with a paragraph of another page of its
    language, so no two are the same text and the vocabulary stays real."""
    by_lang: dict[str, list[Item]] = {}
    for it in data:
        by_lang.setdefault(it.lang, []).append(it)
    out = []
    for i in range(start, start + n):
        it = data[i % len(data)]
        paras = [p for p in it.text.split("\n") if p.strip()] or [it.text]
        turn = (i // len(data)) % len(paras)
        peers = by_lang[it.lang]
        extra = peers[(i * 7 + 3) % len(peers)].text.split("\n")[0]
        out.append((f"bench:{i}", it.lang, f"{it.title} ({i})", "\n".join(paras[turn:] + paras[:turn] + [extra])))
    return out


def _size(settings: Settings) -> float:
    files = [settings.warehouse.search_path, search_index.delta_path(settings.warehouse)]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def scale(root: Path, articles: int) -> list[object]:
    data = items()
    df: Counter[str] = Counter(w for it in data for w in {search.fold(x) for x in _WORD.findall(it.text)})
    settings = load_settings(warehouse=root / f"scale{articles}.duckdb")
    fill(settings, _variants(data, articles))
    base = search_index.refresh(settings)
    fill(settings, _variants(data, 1000, start=articles), start=articles)
    delta = search_index.refresh(settings)
    rng = random.Random(24)
    texts = [" ".join(distinctive_query(it, df)) for it in rng.sample(data, min(200, len(data)))]
    with duckdb.connect() as conn:
        search.install(conn, settings.warehouse)
        macro = []
        for text in texts:
            t = time.perf_counter()
            conn.execute("select * from search_articles(?) limit 10", [text]).fetchall()
            macro.append((time.perf_counter() - t) * 1000)
    full = []
    for text in texts[:50]:
        t = time.perf_counter()
        search.search(settings.warehouse, parse(text), search.Filters(limit=10))
        full.append((time.perf_counter() - t) * 1000)

    def pct(xs: list[float], p: float) -> str:
        return f"{statistics.quantiles(xs, n=100)[int(p) - 1]:.0f}"

    return [f"{articles:,}", f"{base.seconds:.1f}", f"{delta.seconds:.2f} ({delta.mode})", pct(macro, 50),
            pct(macro, 95), pct(full, 50), pct(full, 95), f"{_size(settings):.0f}",
            f"{(root / f'scale{articles}.duckdb').stat().st_size / 1e6:.0f}"]


def report() -> str:
    scales = [int(s) for s in os.environ.get("NEWSFLOW_BENCH_SEARCH_SCALES", "10000").split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        out = "## Search (issue 24)\n\n### Relevance\n\n" + relevance(Path(tmp))
        rows = []
        for n in scales:
            print(f"bench search: {n:,} articles", file=sys.stderr, flush=True)
            rows.append(scale(Path(tmp), n))
    out += ("\n### Speed\n\nArticles made from the real texts (`_variants`), written straight into the warehouse; "
            "the base index built by `search_index.refresh`, then 1,000 more articles and a second refresh (the "
            "delta). Query latency over 200 known-item queries: the `search_articles` macro on an open connection, "
            "and `search.search` (what `newsflow search` runs after its imports: attach, macro, query, snippets; "
            "50 queries).\n\n")
    out += table(["articles", "base build (s)", "refresh +1,000 (s)", "macro p50 (ms)", "macro p95 (ms)",
                  "search p50 (ms)", "search p95 (ms)", "index MB", "warehouse MB"], rows) + "\n"
    return out


if __name__ == "__main__":
    text = header("newsflow search benchmark") + "\n" + report()
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "search.md").write_text(text)
    print(text)
