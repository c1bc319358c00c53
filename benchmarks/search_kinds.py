"""Search latency per query kind, wall and CPU, on a filled warehouse with its index (benchmarks/bench_search.py's
query set): each query through `search.search` (a new connection per query, as `newsflow search` does after its
imports) and, when this tree has it, on one kept `search.Searcher` (a long-lived caller).

    python -m benchmarks.search_kinds /work/benchcache/search-100000-v1.duckdb 100000
    python -m benchmarks.search_kinds PATH N --dump results.jsonl   # also each query's results (search_dump)

Runs against any tree with `search.search` (the warm column needs `search.Searcher`), so a commit before and one
after a change are measured on the same warehouse and the same queries.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchmarks.bench_search import _pct, query_set
from benchmarks.machine import table
from flows.core.searchquery import parse
from flows.core.settings import load_settings
from flows.warehouse import search


def measure(path: Path, n: int, dump: Path | None = None) -> str:
    settings = load_settings(warehouse=path)
    queries = query_set(settings, n, 30)
    modes = {"cold": None}
    if hasattr(search, "Searcher"):
        modes["warm"] = search.Searcher(settings.warehouse)
    rows = []
    load = os.getloadavg()[0]
    out = dump.open("w") if dump else None
    for mode, searcher in modes.items():
        by_kind: dict[str, list[tuple[float, float]]] = {}
        for kind, text, _ in queries:
            t, c = time.perf_counter(), time.process_time()
            if searcher is None:
                hits = search.search(settings.warehouse, parse(text), search.Filters(limit=10))
            else:
                hits = searcher.search(parse(text), search.Filters(limit=10))
            ms = ((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
            if out is not None and searcher is None:
                out.write(json.dumps({"kind": kind, "query": text,
                                      "hits": [[h.article_id, h.score] for h in hits]}) + "\n")
            by_kind.setdefault(kind, []).append(ms)
            by_kind.setdefault("all", []).append(ms)
        for kind, xs in by_kind.items():
            wall, cpu = [x[0] for x in xs], [x[1] for x in xs]
            rows.append([f"{n:,}", mode, kind, f"{len(xs)}", f"{_pct(wall, 50):.0f} / {_pct(wall, 95):.0f}",
                         f"{_pct(cpu, 50):.0f} / {_pct(cpu, 95):.0f}"])
        if searcher is not None:
            searcher.close()
    if out is not None:
        out.close()
    return (table(["articles", "connection", "kind", "queries", "wall p50 / p95 ms", "CPU p50 / p95 ms"], rows)
            + f"\n\nload average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")


if __name__ == "__main__":
    print(measure(Path(sys.argv[1]), int(sys.argv[2]),
                  Path(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--dump" else None))
