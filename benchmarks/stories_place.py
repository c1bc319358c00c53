"""Placing alone: a process that only places bench_stories' batches on an already filled warehouse, so its peak RSS
and CPU are placing's, not the fill's (issue 25, docs/stories.md "Cost").

    python -m benchmarks.stories_place /tmp/stories-100k.duckdb 100000   # fills the file first if it is missing

The filled file is kept (a fill of 1M takes minutes) and copied before placing, so runs of two checkouts (each on
a fill of its own schema) start from the same state. Prints the median batch's wall and CPU ms per article (the
first of 6 batches not counted) and the peak RSS.
"""

from __future__ import annotations

import random
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb

from benchmarks import bench_stories as bench
from flows.warehouse import database, storystore


def main(filled: Path, stored: int) -> str:
    if not filled.exists():
        with duckdb.connect(str(filled)) as conn:
            database.migrate(conn)
            bench.fill(conn, stored)
    work = filled.with_name(filled.stem + "-placing.duckdb")
    shutil.copyfile(filled, work)
    wall, cpu = [], []
    with duckdb.connect(str(work)) as conn:
        rng = random.Random(stored)
        for k in range(6):
            items = bench.new_items(conn, stored, bench.BATCH, k * bench.BATCH, rng)
            conn.execute("begin transaction")
            t, c = time.perf_counter(), time.process_time()
            storystore.place(conn, items, {i.article_id: "u" for i in items}, bench.SETTINGS, bench.END, "bench")
            wall.append(1000 * (time.perf_counter() - t) / len(items))
            cpu.append(1000 * (time.process_time() - c) / len(items))
            conn.execute("commit")
    work.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"{stored:,} stored: wall {statistics.median(wall[1:]):.1f} ms / article, CPU "
            f"{statistics.median(cpu[1:]):.1f} ms / article (median batch), peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), int(sys.argv[2])))
