"""Quiet runs on year-sized warehouses, two checkouts interleaved (issue 23: a quiet run under 3 s at 1M, its
memory flat with the warehouse's size).

    python -m benchmarks.quietyear --copy CACHE DIR     # a working copy of a year cache (no snapshot, no search)
    python -m benchmarks.quietyear --prep DIR           # migrate; a full check pass (every watermark set)
    python -m benchmarks.quietyear --rounds 3 DIR[,DIR] [LABEL=CHECKOUT ...]
    python -m benchmarks.quietyear --inserts DIR        # `insert or ignore`: key anti-joins against DuckDB's own

Each round runs, for every DIR and then every checkout in turn, one `ingest` flow run in its own process
(benchmarks/yearstep.py with that checkout first on PYTHONPATH): 100 feeds answering 304, nothing new, the
snapshot off (a quiet run publishes none when it is current). Printed per run and as medians: the flow's wall
time, its steps, the CPU time of the whole process (imports and Prefect's client included, the API server's
not: on a loaded machine the fairer judge), the parent's peak resident memory (VmHWM), bytes it wrote, and the
1-minute load average.
The copy hard-links the lookup cache and the raw archives (never changed in place) and copies the file: runs
write bookkeeping rows into it, which a steady state has too. Delete DIR when done.

`--inserts` times what a run's loads insert "or ignore" (100 feed fetches, 128 entries, 128 articles, 2,560
entity links), both ways, each in a transaction rolled back: flows/warehouse/writer.upsert's anti-joins (what a
DuckLake needs) and the keys' indexes as a file's load uses them (writer._insert: DuckDB's own `insert or ignore`
for a table of one key, `on conflict (article_id) do nothing` for the loader's articles, whose URLs it has looked
up first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import site
from benchmarks.bench_year import _FETCH, FEEDS, feeds_toml, point_feeds
from benchmarks.yearcache import WAREHOUSE, say

_LINKED = (".parquet", ".npy")


def copy(cache: Path, work: Path) -> None:
    """The warehouse file and the lookup cache's manifest copied, immutable files hard-linked; the snapshot and
    the search index left out (a quiet run with the snapshot off reads neither)."""
    shutil.rmtree(work, ignore_errors=True)
    for path in sorted(cache.rglob("*")):
        rel = path.relative_to(cache)
        top = rel.parts[0]
        if top == "snapshots" or ".search" in top or top.endswith(".toml") or top.startswith(".done"):
            continue
        dest = work / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.suffix in _LINKED:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    for path in sorted(cache.rglob("*"), reverse=True):  # raw retention reads the day folders' mtimes
        if path.is_dir() and (work / path.relative_to(cache)).exists():
            st = path.stat()
            os.utime(work / path.relative_to(cache), (st.st_atime, st.st_mtime))


def config(work: Path, base: str) -> Path:
    urls = {f"f{f:03d}": f"{base}/quiet/{f}.xml" for f in range(FEEDS)}
    point_feeds(work, urls)
    path = work / "quiet.toml"
    (work / "seeds").mkdir(exist_ok=True)
    path.write_text(f'[warehouse]\npath = "{work / WAREHOUSE}"\nstaging_dir = "{work / "staging"}"\n'
                    f'snapshot = false\nsnapshot_path = "{work / "snapshots" / WAREHOUSE}"\n'
                    f'[pipeline]\nseeds_dir = "{work / "seeds"}"\n' + _FETCH + feeds_toml(urls))
    return path


def prep(work: Path) -> None:
    from flows.core.sections import DedupSettings
    from flows.core.settings import WarehouseSettings
    from flows.warehouse import checks, database

    settings = WarehouseSettings(path=work / WAREHOUSE, staging_dir=work / "staging")
    start = time.perf_counter()
    database.ensure_ready(settings)  # a cache filled before the newest migrations
    done = checks.run_and_store(settings, "quietyear-prep", alive_runs=[], full=True, dedup=DedupSettings(),
                                wait=600)
    say(f"{work}: full pass {time.perf_counter() - start:.0f} s, {len(done.failed)} failing")


def inserts(work: Path, rounds: int = 3) -> None:
    import duckdb
    import pyarrow as pa

    from flows.warehouse import writer

    now = datetime.now(UTC)
    with duckdb.connect(str(work / WAREHOUSE)) as conn:
        counts = {t: conn.execute(f"select count(*) from {t}").fetchall()[0][0]
                  for t in ("feed_fetches", "entries", "articles", "article_entities")}
        say(f"{work.name}: stored {counts}")
        entities = [r[0] for r in conn.execute("select entity_id from entities limit 20").fetchall()]
        for rnd in range(rounds):
            for way in ("anti-join", "own"):
                tag = f"qy{time.time_ns()}"
                rows = {
                    "feed_fetches": [{"fetch_id": f"{tag}:f{i:03d}", "run_id": tag, "feed": f"f{i:03d}", "url": "u",
                                      "outcome": "not_modified", "fetched_at": now} for i in range(FEEDS)],
                    "entries": [{"feed": f"f{i % FEEDS:03d}", "guid": f"{tag}-{i}", "url": f"https://qy/{tag}/{i}",
                                 "first_seen_at": now, "first_run_id": tag} for i in range(128)],
                    "articles": [{"article_id": -(rnd * 1000 + i) - 10, "url": f"https://qy/{tag}/{i}", "text": "t",
                                  "text_hash": f"{tag}{i}", "body_source": "extracted", "ner_pipeline": "qy",
                                  "n_shingles": 1, "n_samples": 1, "run_id": tag, "loaded_at": now}
                                 for i in range(128)],
                    "article_entities": [{"article_id": -(rnd * 1000 + i) - 10, "entity_id": e, "mentions": 1}
                                         for i in range(128) for e in entities],
                }
                took = {}
                conn.execute("begin transaction")
                for table, batch in rows.items():
                    start = time.perf_counter()
                    if way == "own":  # registers its rows itself: a few ms of the figure
                        writer._insert(conn, "insert or ignore", table, batch, on_primary=table == "articles")
                    else:
                        conn.register("q_rows", pa.Table.from_pylist(batch))
                        start = time.perf_counter()
                        writer.upsert(conn, table, "q_rows", list(batch[0]), keep="ignore")
                        conn.unregister("q_rows")
                    took[table] = (time.perf_counter() - start) * 1000
                conn.execute("rollback")
                say(f"{work.name} round {rnd + 1} {way}: " + ", ".join(f"{t} {len(rows[t])} rows {ms:.0f} ms"
                                                                   for t, ms in took.items())
                    + f"; load {os.getloadavg()[0]:.1f}")


def one_run(cfg: Path, checkout: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.yearstep", str(cfg), "--cold"], stdout=out,
                                stderr=err, env=env, cwd=checkout)
        _, status, usage = os.wait4(proc.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if rc != 0:
            raise RuntimeError(f"flow run failed ({rc}): {err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    parent = result["tree"].get("parent", {})
    return {"wall": result["wall"], "steps": result["steps"], "peak_mib": parent.get("peak_mib_max", 0.0),
            "written_mib": parent.get("written_mib", 0.0), "load": load, "cpu": usage.ru_utime + usage.ru_stime}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copy", nargs=2, metavar=("CACHE", "DIR"))
    ap.add_argument("--prep", metavar="DIR")
    ap.add_argument("--inserts", metavar="DIR")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("dirs", nargs="?")
    ap.add_argument("checkouts", nargs="*")
    args = ap.parse_args(argv)
    if args.copy:
        copy(Path(args.copy[0]), Path(args.copy[1]))
        return
    if args.prep:
        prep(Path(args.prep))
        return
    if args.inserts:
        inserts(Path(args.inserts), args.rounds)
        return
    dirs = [Path(d) for d in args.dirs.split(",")]
    checkouts = dict(c.split("=", 1) for c in args.checkouts) or {"this": str(Path(__file__).parent.parent)}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as empty, site.Server(Path(empty), not_modified=True) as server, \
            prefect_test_harness(server_startup_timeout=180):
        os.environ["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        cfgs = {d: config(d, server.base) for d in dirs}
        for rnd in range(args.rounds):
            for d in dirs:
                for label, checkout in checkouts.items():
                    r = one_run(cfgs[d], Path(checkout))
                    runs.setdefault((d.name, label), []).append(r)
                    top = sorted(r["steps"].items(), key=lambda kv: -kv[1])[:5]
                    say(f"round {rnd + 1} {d.name} {label}: flow {r['wall']:.2f} s, process CPU {r['cpu']:.2f} s, "
                        f"{r['peak_mib']:.0f} MiB, "
                        f"wrote {r['written_mib']:.0f} MiB, load {r['load']:.1f}; "
                        + ", ".join(f"{k} {v:.2f}" for k, v in top))
    print("| warehouse | checkout | flow s (median) | each | process CPU s | peak MiB | wrote MiB | load "
          "| steps (median s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, label), rs in runs.items():
        steps = {k: statistics.median(r["steps"].get(k, 0.0) for r in rs) for k in rs[0]["steps"]}
        print(f"| {name} | {label} | {statistics.median(r['wall'] for r in rs):.2f} | "
              f"{' / '.join(format(r['wall'], '.2f') for r in rs)} | {statistics.median(r['cpu'] for r in rs):.2f} | "
              f"{statistics.median(r['peak_mib'] for r in rs):.0f} | "
              f"{statistics.median(r['written_mib'] for r in rs):.0f} | "
              f"{' / '.join(format(r['load'], '.1f') for r in rs)} | "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
