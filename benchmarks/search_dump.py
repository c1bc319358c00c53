"""The results of the benchmark's query set (benchmarks/bench_search.py) as JSON lines, to check that two trees rank
alike: `{"kind", "query", "hits": [[article_id, score], ...]}` per query, through `search.search` (limit 10).

    PYTHONPATH=<tree> python -m benchmarks.search_dump /work/benchcache/search-100000-v1.duckdb 100000 > a.jsonl
    python -m benchmarks.search_dump --compare a.jsonl b.jsonl     # same ids in the same order, scores to 1e-9

Runs against any tree with `search.search`, so the code before a change and after it answer the same queries.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.bench_search import query_set
from flows.core.searchquery import parse
from flows.core.settings import load_settings
from flows.warehouse import search


def dump(path: Path, n: int, known: int = 30) -> None:
    settings = load_settings(warehouse=path)
    for kind, text, _ in query_set(settings, n, known):
        hits = search.search(settings.warehouse, parse(text), search.Filters(limit=10))
        print(json.dumps({"kind": kind, "query": text, "hits": [[h.article_id, h.score] for h in hits]}))


def compare(a: Path, b: Path) -> int:
    """The number of queries whose results differ (ids or order, or a score by more than 1e-9 relative)."""
    left = [json.loads(x) for x in a.read_text().splitlines()]
    right = [json.loads(x) for x in b.read_text().splitlines()]
    bad = 0
    for x, y in zip(left, right, strict=True):
        same = [h[0] for h in x["hits"]] == [h[0] for h in y["hits"]] and all(
            abs(p[1] - q[1]) <= 1e-9 * max(1.0, abs(p[1])) for p, q in zip(x["hits"], y["hits"], strict=True))
        if not same:
            bad += 1
            print(f"differs: {x['query']!r}\n  {x['hits']}\n  {y['hits']}")
    print(f"{len(left)} queries, {bad} differ")
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(1 if compare(Path(sys.argv[2]), Path(sys.argv[3])) else 0)
    dump(Path(sys.argv[1]), int(sys.argv[2]))
