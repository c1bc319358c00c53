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
import itertools
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

from benchmarks import search_fill
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


def _size(settings: Settings) -> float:
    """MB of the index: its head and segments."""
    seg = search_index.segments_dir(settings.warehouse)
    return (settings.warehouse.search_path.stat().st_size + sum(f.stat().st_size for f in seg.iterdir())) / 1e6


def query_set(settings: Settings, n: int, known: int) -> list[tuple[str, str, int | None]]:
    """(kind, query, expected article id) over the filled articles: `known` known-item queries (2 made-up names
    and 1-2 real words of an article), and 20 each of common words (2-3 of the 40 most frequent words of a
    language), phrases (the most frequent two-word sequences, quoted) and OR (`a OR b c`, frequent words)."""
    pool = search_fill.pool()
    names = set(pool.names)
    rng = random.Random(24)
    out: list[tuple[str, str, int | None]] = []
    picked = rng.sample(range(n), known)
    with database.connect(settings.warehouse, read_only=True) as conn:
        texts = dict(conn.execute("select article_id, text from articles where article_id in (select unnest(?))",
                                  [picked]).fetchall())
    for i in picked:
        words = _WORD.findall(texts[i])
        made = sorted({w for w in words if w in names})
        real = sorted({w for w in words if len(w) >= 6 and w not in names})
        out.append(("known", " ".join(rng.sample(made, min(2, len(made))) + rng.sample(real, rng.randint(1, 2))), i))
    for lang in ("en", "de"):
        counts: Counter[str] = Counter()
        pairs: Counter[str] = Counter()
        for sent in pool.sentences[lang]:
            ws = [w.lower() for w in _WORD.findall(sent)]
            counts.update(w for w in set(ws) if len(w) >= 4)
            pairs.update(f"{a} {b}" for a, b in itertools.pairwise(ws) if len(a) >= 4 and len(b) >= 4)
        top = [w for w, _ in counts.most_common(40)]
        for _ in range(10):
            out.append(("common", " ".join(rng.sample(top, rng.randint(2, 3))), None))
        out += [("phrase", f'"{p}"', None) for p, _ in pairs.most_common(10)]
        for _ in range(10):
            a, b, c = rng.sample(top, 3)
            out.append(("or", f"{a} OR {b} {c}", None))
    return out


def _pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] if len(xs) > 1 else xs[0]


def latency(settings: Settings, queries: list[tuple[str, str, int | None]], macro: bool) -> dict[str, object]:
    """ms per query of `search.search` (what `newsflow search` runs after its imports) per kind, and of the
    macro on one open connection; recall@10 of the known items."""
    by_kind: dict[str, list[float]] = {}
    cpu: list[float] = []
    found = 0
    for kind, text, target in queries:
        t, c = time.perf_counter(), time.process_time()
        hits = search.search(settings.warehouse, parse(text), search.Filters(limit=10))
        by_kind.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        found += target is not None and f"bench:{target}" in [h.url for h in hits]
    out: dict[str, object] = {"by_kind": by_kind, "cpu": cpu,
                              "known_recall": found / max(1, sum(1 for q in queries if q[2] is not None))}
    if macro:
        ms = []
        with duckdb.connect() as conn:
            search.install(conn, settings.warehouse)
            for _, text, _ in queries:
                t = time.perf_counter()
                conn.execute("select * from search_articles(?) limit 10", [text]).fetchall()
                ms.append((time.perf_counter() - t) * 1000)
        out["macro"] = ms
    return out


def refreshes(settings: Settings, n: int, rounds: int) -> list[tuple[search_index.Refresh, float]]:
    """`rounds` x (1,000 new articles, 10 stored again with another text, 5 deleted), each followed by a
    refresh; with the CPU seconds of each refresh."""
    out = []
    rng = random.Random(n)
    for r in range(rounds):
        search_fill.insert(settings, n + r * 1000, 1000)
        with database.connect(settings.warehouse) as conn:
            for i in rng.sample(range(n), 10):
                text = search_fill.article(i + 7)[3]
                conn.execute("update articles set text = ?, text_hash = ? where article_id = ?",
                             [text, hashlib.sha256(text.encode()).hexdigest(), i])
            conn.execute("delete from articles where article_id in (select unnest(?))", [rng.sample(range(n), 5)])
        c = time.process_time()
        done = search_index.refresh(settings)
        out.append((done, time.process_time() - c))
        print(f"bench search: refresh {r + 1}/{rounds} at {n:,}: {out[-1]}", file=sys.stderr, flush=True)
    return out


RUN_SECONDS_PER_1000 = 90.0  # benchmarks/results/2026-12-06-benchmarks-ingest.md: 11.1 articles/s


def scale(root: Path, n: int, *, known: int, rounds: int, macro: bool) -> tuple[list[object], list[object]]:
    """(speed row, refresh row) at n stored articles."""
    settings, built = search_fill.warehouse(n, root)
    queries = query_set(settings, n, known)
    load = os.getloadavg()[0]
    lat = latency(settings, queries, macro)
    allq = [x for xs in lat["by_kind"].values() for x in xs]  # type: ignore[union-attr]
    kinds = lat["by_kind"]  # type: ignore[assignment]
    size = _size(settings)
    cpu = lat["cpu"]  # type: ignore[assignment]
    row = [f"{n:,}", f"{len(allq)}", f"{_pct(allq, 50):.0f}", f"{_pct(allq, 95):.0f}",
           f"{_pct(cpu, 50):.0f} / {_pct(cpu, 95):.0f}",
           *(f"{_pct(kinds[k], 95):.0f}" for k in ("known", "common", "phrase", "or")),
           f"{_pct(lat['macro'], 50):.0f} / {_pct(lat['macro'], 95):.0f}" if macro else "-",
           f"{load:.0f}-{os.getloadavg()[0]:.0f}",
           f"{lat['known_recall']:.2f}", f"{size:,.0f}", f"{size * 1e6 / n / 1e3:,.1f}",
           f"{built:.0f}" if built is not None else "(cached)"]
    return row, refresh_row(n, refreshes(settings, n, rounds))


REFRESH_HEADER = ["articles", "each refresh (s)", "median s", "mean s", "max s", "mean / run", "CPU s each",
                  "mean CPU / run", "merged articles", "segments after"]


def refresh_row(n: int, runs: list[tuple[search_index.Refresh, float]]) -> list[str]:
    """One row of the refresh table (REFRESH_HEADER): each refresh's wall and CPU seconds, and their share of the
    ingest run that would have loaded those articles."""
    done = [d for d, _ in runs]
    secs = [d.seconds for d in done]
    cpus = [c for _, c in runs]
    return [f"{n:,}", " / ".join(f"{x:.2f}" for x in secs), f"{statistics.median(secs):.2f}",
            f"{statistics.mean(secs):.2f}", f"{max(secs):.2f}",
            f"{100 * statistics.mean(secs) / RUN_SECONDS_PER_1000:.1f} %",
            " / ".join(f"{x:.2f}" for x in cpus), f"{100 * statistics.mean(cpus) / RUN_SECONDS_PER_1000:.1f} %",
            f"{sum(d.merged for d in done):,}", f"{done[-1].segments}"]


def report() -> str:
    scales = [int(s) for s in os.environ.get("NEWSFLOW_BENCH_SEARCH_SCALES", "10000").split(",") if s.strip()]
    known = int(os.environ.get("NEWSFLOW_BENCH_SEARCH_KNOWN", "30"))
    rounds = int(os.environ.get("NEWSFLOW_BENCH_SEARCH_ROUNDS", "4"))
    macro_max = int(os.environ.get("NEWSFLOW_BENCH_SEARCH_MACRO_MAX", "100000"))  # the macro checks every phrase
    out = f"## Search (issue 24)\n\nScales {', '.join(f'{n:,}' for n in scales)}.\n\n"
    if os.environ.get("NEWSFLOW_BENCH_SEARCH_RELEVANCE", "1") != "0":
        with tempfile.TemporaryDirectory() as tmp:
            out += "### Relevance\n\n" + relevance(Path(tmp))
    rows, refresh_rows = [], []
    for n in scales:
        print(f"bench search: {n:,} articles", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=os.environ.get("NEWSFLOW_BENCH_TMP")) as tmp:
            row, refreshed = scale(Path(tmp) / "w", n, known=known, rounds=rounds, macro=n <= macro_max)
        rows.append(row)
        refresh_rows.append(refreshed)
    out += (f"\n### Speed\n\nArticles made from the real texts (benchmarks/search_fill.py: 8-20 real sentences of "
            "one language and 2-6 made-up names each, ~1.8 KB), stored set-wise, the index built from nothing by "
            f"`search_index.refresh(rebuild=True)` (cached in {search_fill.cache_dir()}). Latency of "
            "`search.search` (what `newsflow search` runs after its imports: attach, query, snippets; limit 10), "
            f"one query at a time: {known} known-item queries (2 made-up names and 1-2 words of one article), "
            "20 of 2-3 common words, 20 frequent two-word phrases, 20 `a OR b c` of common words; the macro "
            "`search_articles` on one open connection over the same queries.\n\n")
    out += table(["articles", "queries", "p50 ms", "p95 ms", "CPU p50 / p95 ms", "p95 known", "p95 common",
                  "p95 phrase", "p95 OR", "macro p50 / p95 ms", "load avg", "known-item recall@10", "index MB",
                  "KB per article", "build s"],
                 rows) + "\n"
    out += ("\nWall times are those of a machine shared with other jobs (`load avg`: the 1-minute load average at "
            "the start and the end of the queries, on 2 cores); the CPU time of the process (all its threads) does not "
            "depend on that load.\n")
    out += (f"\nRefresh: {rounds} rounds of 1,000 new articles (with 10 stored articles given another text and 5 "
            "deleted), each followed by `search_index.refresh`; the share is the mean refresh over "
            f"{RUN_SECONDS_PER_1000:.0f} s, the run that loads 1,000 articles at the pipeline's measured 11.1 "
            "articles/s (benchmarks/results/2026-12-06-benchmarks-ingest.md). Target < 5 %.\n\n")
    out += table(REFRESH_HEADER, refresh_rows) + "\n"
    return out


if __name__ == "__main__":
    text = header("newsflow search benchmark") + "\n" + report()
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "search.md").write_text(text)
    print(text)
