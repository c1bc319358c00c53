"""What the maintenance flow's compaction costs and gives back (flows/warehouse/compact.py), on a synthetic
warehouse filled by benchmarks/warehouse_scale.py `fill()` with a share of its articles then deleted (with their
index rows, entity links, entries and page fetches), as a purge or a `reprocess` leaves it. One run:

    python -m benchmarks.compaction --articles 50000 --deleted 0.3

Prints the file's size, the reclaimable share the compaction step measures, the compaction's time and the size
after; then the peak memory of a dedup lookup of one batch with no lookup cache (the tables read, as a load does
until the maintenance flow rebuilds the cache) in a fresh process. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from benchmarks.warehouse_scale import fill, make_docs
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.warehouse import candidates, compact, database, keycache
from flows.warehouse.writer import signature_of

_DELETE = ("articles", "lsh_buckets", "shingle_samples", "article_entities")


def _status(field: str) -> float:
    """A line of /proc/self/status in MiB (VmRSS: resident now, VmHWM: peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> float:
    """Reset the peak resident size to the current one (Linux clear_refs 5); returns the current one."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _lookup(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """A load's candidate lookup of one 128-document batch with no cache: the tables read."""
    settings = DedupSettings()
    sigs = {i: signature_of(d) for i, d in enumerate(make_docs(128, settings, 0))}
    before = _reset_peak()
    start = time.perf_counter()
    with database.connect(WarehouseSettings(path=Path(path)), read_only=True) as conn:
        candidates.stored_candidates(conn, sigs, settings)
    out.put((time.perf_counter() - start, before, _status("VmHWM")))


def _rebuild(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The cache rebuild a load used to do inline, now the maintenance flow's."""
    make_docs(1, DedupSettings(), 0)  # the same imports as _lookup, for a like baseline
    before = _reset_peak()
    start = time.perf_counter()
    with database.connect(WarehouseSettings(path=Path(path)), read_only=True) as conn:
        keycache.refresh(conn)
    out.put((time.perf_counter() - start, before, _status("VmHWM")))


def _child(target: object, path: Path) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(str(path), queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--deleted", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsflow-compact-") as tmp:
        wh = WarehouseSettings(path=Path(tmp) / "w.duckdb")
        start = time.perf_counter()
        fill(wh, args.articles, 0)
        print(f"filled {args.articles} articles in {time.perf_counter() - start:.1f} s: "
              f"{wh.path.stat().st_size / 1e6:.1f} MB")
        with database.connect(wh) as conn:
            cut = int(args.deleted * 100)
            for table in _DELETE:
                conn.execute(f"delete from {table} where article_id % 100 < {cut}")
            for table in ("entries", "page_fetches"):
                conn.execute(f"delete from {table} where hash(url) % 100 < {cut}")
            conn.execute("checkpoint")
        print(f"deleted {args.deleted:.0%} of the articles and their rows: {wh.path.stat().st_size / 1e6:.1f} MB")
        done = compact.compact(wh, min_free_ratio=0.01)
        print(f"compaction: {done.seconds:.2f} s, reclaimable measured {done.free_ratio:.1%}, "
              f"{done.bytes_before / 1e6:.1f} MB -> {done.bytes_after / 1e6:.1f} MB "
              f"({1 - done.bytes_after / done.bytes_before:.1%} reclaimed)")
        with database.connect(wh) as conn, database.transaction(conn):
            candidates.record_index(conn, DedupSettings())  # fill() writes the index rows at load 1
            conn.execute(database.query("dedup_index_next_seq"))
        for what, target in (("dedup lookup of 128 documents without a lookup cache (the tables read)", _lookup),
                             ("lookup cache rebuild (now the maintenance flow's, never a load's)", _rebuild)):
            seconds, before, peak = _child(target, wh.path)
            print(f"{what}: {seconds:.2f} s, peak RSS {peak:.0f} MiB, {peak - before:+.0f} MiB over the process's "
                  "resident size before it")


if __name__ == "__main__":
    main()
