"""The index refresh after runs' worth of new articles (benchmarks/bench_search.py's refresh part) on a cached
warehouse in place, for a size whose copy does not fit on the disk (1M: 6.6 GB of warehouse and 7.9 GB of index).

    python -m benchmarks.search_refresh /work/benchcache/search-1000000-v1.duckdb 1000000

The same rounds as bench_search (1,000 new articles, 10 stored ones given another text and 5 deleted, then
`search_index.refresh`), then the warehouse is put back: the new articles deleted, the changed and deleted ones
stored again as they were (saved to a Parquet file first), and one more refresh. The warehouse then holds the same
articles as before and the index the same live articles (with a few more segments and tombstones), so searches
rank as before (`benchmarks.search_dump --compare` checks it).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_search import REFRESH_HEADER, refresh_row, refreshes
from benchmarks.machine import table
from flows.core.settings import load_settings
from flows.warehouse import database, search_index


def touched(n: int, rounds: int) -> list[int]:
    """The stored articles bench_search.refreshes changes or deletes (the same draws from the same seed)."""
    rng = random.Random(n)
    out: list[int] = []
    for _ in range(rounds):
        out += rng.sample(range(n), 10)
        out += rng.sample(range(n), 5)
    return sorted(set(out))


def measure(path: Path, n: int, rounds: int = 4) -> str:
    settings = load_settings(warehouse=path)
    ids = touched(n, rounds)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        saved = Path(tmp) / "saved.parquet"
        with database.connect(settings.warehouse) as conn:
            if conn.execute("select count(*) from articles where article_id >= ?", [n]).fetchone()[0]:
                raise SystemExit(f"{path}: holds articles past {n:,}: a previous run was cut short")
            conn.execute(f"copy (select * from articles where article_id in (select unnest(?))) to "
                         f"'{saved}' (format parquet)", [ids])
        runs = refreshes(settings, n, rounds)
        with database.connect(settings.warehouse) as conn:
            conn.execute("begin")
            conn.execute("delete from articles where article_id >= ? or article_id in (select unnest(?))",
                         [n, ids])
            conn.execute(f"insert into articles select * from read_parquet('{saved}')")
            conn.execute("commit")
            left = conn.execute("select count(*) from articles").fetchone()[0]
        c = time.process_time()
        back = search_index.refresh(settings)
        back_cpu = time.process_time() - c
    return (table(REFRESH_HEADER, [refresh_row(n, runs)])
            + f"\n\nload average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; put back: "
              f"{left:,} articles, the refresh after it {back.seconds:.2f} s ({back_cpu:.2f} s CPU, "
              f"{back.segments} segments)\n")


if __name__ == "__main__":
    print(measure(Path(sys.argv[1]), int(sys.argv[2])))
