"""A view's export under the cap a default export sets (issue 23: `export` of every table and view, memory
bounded, at a year's size), for comparing two versions of a view's SQL on one warehouse:

    git show OLD:warehouse/views/entity_comentions.sql > /tmp/old.sql
    python -m benchmarks.export_view WAREHOUSE /tmp/old.sql
    python -m benchmarks.export_view WAREHOUSE warehouse/views/entity_comentions.sql

One process per version (the peak is the process's). The warehouse is opened read-only and its stored view is not
used: the file's query is exported as `newsflow export` exports a view (`bound_memory` as for a view, batches
written by `flows.warehouse.export`), to a temp folder removed after. Printed: rows, wall and CPU seconds, peak
resident memory, and the blocks the process wrote (the Parquet file plus DuckDB's spill).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from flows.warehouse.export import bound_memory, export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("sql", type=Path, help="a file holding the view's query")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-view-") as out, \
            duckdb.connect(str(args.warehouse), read_only=True) as conn:
        cap = bound_memory(conn, ["entity_comentions"], None)  # a view named: the cap of any export of views
        wall, cpu = time.perf_counter(), time.process_time()
        done = export(conn, Path(out) / "view.parquet", query=args.sql.read_text(), name="view")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{args.sql}: {done[0].rows} rows under {cap}, wall {wall:.1f} s, CPU {cpu:.1f} s, "
          f"peak {usage.ru_maxrss // 1024} MiB, {usage.ru_oublock * 512 / 1e9:.2f} GB written")


if __name__ == "__main__":
    main()
