"""The warehouse checks at scale: a full pass against the incremental pass a run makes (issue 23).

    python -m benchmarks.bench_checks_scale fill DIR 100000   # a synthetic warehouse in DIR (~30 s, ~340 MB)
    python -m benchmarks.bench_checks_scale prep DIR          # a full pass on a copy: the watermarks stand
    python -m benchmarks.bench_checks_scale full DIR          # 3 full passes
    python -m benchmarks.bench_checks_scale incremental DIR   # 3 x (load 128 articles, incremental pass)
    python -m benchmarks.bench_checks_scale quiet DIR         # 3 incremental passes with nothing loaded since

One process per mode, so `/usr/bin/time -v` gives its peak RSS. Each mode works on a copy of the prepared file.
The fill is benchmarks/warehouse_scale.py's (its index inserts given column lists), with article ids hashed as
real ones are (sequential ids would let zone maps on article_id flatter any plan) and 30% duplicates.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks.warehouse_scale import FILL
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.warehouse import checks, database, writer

_H = "(hash(i) >> 1)::bigint"
_DUPLICATES = """insert into duplicates (url, feed, duplicate_of, method, criterion, similarity, seen_at, run_id)
select 'https://dup.example/' || i, 'feed1', (hash(i % $n) >> 1)::bigint, 'near', 'jaccard', 0.9, now(), 'fill'
from range($n * 3 // 10) t(i)"""


def settings_for(path: Path) -> WarehouseSettings:
    return WarehouseSettings(path=path, staging_dir=path.with_name("staged"))


def fill(folder: Path, articles: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings_for(folder / "filled.duckdb")
    database.ensure_ready(settings)
    sql = (FILL.replace("insert into lsh_buckets\n", "insert into lsh_buckets (key, article_id)\n")
           .replace("insert into shingle_samples select", "insert into shingle_samples (hash, article_id) select")
           .replace("insert into article_entities select",
                    "insert into article_entities (article_id, entity_id, mentions) select")
           .replace("insert into entities select",
                    "insert into entities (entity_id, name, label, first_seen_at) select")
           .replace("select i, 'https://fill.example/' || i", f"select {_H}, 'https://fill.example/' || i")
           .replace("| b, i from range", f"| b, {_H} from range")
           .replace("::bigint, i from range($n) t(i), range(56)", f"::bigint, {_H} from range($n) t(i), range(56)")
           .replace("select distinct i, (hash", f"select distinct {_H}, (hash"))
    with database.connect(settings) as conn:
        for statement in [*sql.strip().split(";\n"), _DUPLICATES]:
            conn.execute(statement, {"n": articles} if "$n" in statement else None)
        conn.execute("checkpoint")


def load_more(settings: WarehouseSettings, k: int) -> None:
    """One load of 128 articles with their index rows and entity links, numbered as a load numbers them."""
    with database.connect(settings) as conn, database.transaction(conn):
        seq = writer.next_load_seq(conn)
        h = f"(hash(i + {20_000_000 + k * 1000}) >> 1)::bigint"
        conn.execute(f"""insert into articles (article_id, url, text, text_hash, body_source, ner_pipeline, n_shingles,
                         n_samples, run_id, loaded_at, index_seq, load_seq)
                         select {h}, 'https://more.example/{k}/' || i, 'text', md5(i::varchar), 'extracted', 'bench',
                                450, 56, 'r', now(), {seq}, {seq} from range(128) t(i)""")
        conn.execute(f"insert into shingle_samples (hash, article_id, seq) select (hash(i * 31 + s) >> 1)::bigint, "
                     f"{h}, {seq} from range(128) t(i), range(56) u(s)")
        conn.execute(f"insert into article_entities (article_id, entity_id, mentions, load_seq) select distinct {h}, "
                     f"(hash(i * 7 + e) % 50000)::bigint, 2, {seq} from range(128) t(i), range(12) u(e)")


def measure(folder: Path, mode: str) -> None:
    path = folder / f"bench-{mode}.duckdb"
    shutil.copyfile(folder / "prepared.duckdb", path)
    settings = settings_for(path)
    times, per_check = [], {}
    for k in range(3):
        if mode == "incremental":
            load_more(settings, k)
        with database.connect(settings) as conn:
            start = time.perf_counter()
            done = checks.run_and_store(settings, f"bench-{k}", alive_runs=[], full=mode == "full", conn=conn,
                                        dedup=DedupSettings())
            times.append(time.perf_counter() - start)
        assert not done.failed, done.failed
        for r in done.results:
            per_check.setdefault(r.name, []).append(r.duration_ms)
    print(f"{mode}: checks pass (run + store) median {statistics.median(times) * 1000:.0f} ms of 3: "
          + ", ".join(f"{t * 1000:.0f}" for t in times))
    for name, ms in sorted(per_check.items()):
        print(f"  {name:<28} {statistics.median(ms):8.1f} ms")
    path.unlink()


def main(argv: list[str]) -> None:
    mode, folder = argv[0], Path(argv[1])
    if mode == "fill":
        fill(folder, int(argv[2]))
    elif mode == "prep":
        shutil.copyfile(folder / "filled.duckdb", folder / "prepared.duckdb")
        checks.run_and_store(settings_for(folder / "prepared.duckdb"), "prep", alive_runs=[], full=True,
                             dedup=DedupSettings())
    else:
        measure(folder, mode)


if __name__ == "__main__":
    main(sys.argv[1:])
