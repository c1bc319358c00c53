"""Year-shaped warehouses cached outside the repository (benchmarks/bench_year.py), and fresh copies of them.

A cache folder `<NEWSFLOW_BENCH_CACHE or /work/benchcache>/year-<articles>-s<schema>-f<fill>/` holds what a year-old
deployment has on disk: the warehouse file (benchmarks/yearfill.py), its raw archives, the dedup lookup cache, the
full-text search index and a published snapshot. Each part is made once and marked done (`.done-<part>`), so an
interrupted preparation resumes where it stopped. A copy for a measurement copies every file that a run may change
in place and hard-links the files runs only ever replace whole or add beside (Parquet archives, lookup-cache
segments), so runs start identical without copying gigabytes of immutable files each time. A cache of an earlier
schema (the same fill) is migrated in place and renamed rather than filled again, as a deployment is upgraded
(`adopt_older`): a 1M fill with its search index takes a quarter of an hour.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import yearfill
from flows.core.settings import Settings, WarehouseSettings, load_settings
from flows.warehouse import database

WAREHOUSE = "wh.duckdb"
_LINKED = (".parquet", ".npy")  # written once and never changed in place: safe to hard-link into a copy


def say(msg: str) -> None:
    print(f"bench year {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("NEWSFLOW_BENCH_CACHE", "/work/benchcache"))


def schema() -> int:
    return len(database.migrations())


def folder(articles: int) -> Path:
    return cache_root() / f"year-{articles}-s{schema()}-f{yearfill.FILL_VERSION}"


def write_config(root: Path, extra: str = "", name: str = "newsflow.toml") -> Path:
    """A config whose warehouse, staging, snapshot and seeds live in `root` (plus `extra` TOML)."""
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(f'[warehouse]\npath = "{root / WAREHOUSE}"\nstaging_dir = "{root / "staging"}"\n'
                    f'snapshot_path = "{root / "snapshots" / WAREHOUSE}"\n'
                    f'[pipeline]\nseeds_dir = "{root / "seeds"}"\n' + extra)
    return path


def settings_in(root: Path) -> Settings:
    return load_settings(write_config(root), env={})


def _part(root: Path, name: str, make: Callable[[], object]) -> float:
    """Make one part of the cache unless it is marked done; its seconds (0 when it was done before)."""
    mark = root / f".done-{name}"
    if mark.exists():
        return 0.0
    say(f"{root.name}: {name} ...")
    start = time.perf_counter()
    make()
    seconds = time.perf_counter() - start
    mark.write_text(f"{seconds:.1f}\n")
    say(f"{root.name}: {name} done in {seconds:.0f} s")
    return seconds


def part_seconds(root: Path) -> dict[str, float]:
    """Seconds each part of a cache folder took when it was made."""
    return {p.name.removeprefix(".done-"): float(p.read_text() or 0) for p in sorted(root.glob(".done-*"))}


def adopt_older(articles: int) -> Path | None:
    """Bring the newest cache of `articles` made under an earlier schema (same fill) to this one: its warehouse
    migrated in place, the folder renamed, its snapshot and check watermarks marked to be made again (the
    snapshot is of the old schema; a new check has no watermark). None when there is none or the folder exists."""
    root = folder(articles)
    if root.exists():
        return None
    pattern = re.compile(rf"year-{articles}-s(\d+)-f{yearfill.FILL_VERSION}")
    older = sorted((int(m.group(1)), p) for p in cache_root().glob(f"year-{articles}-s*-f{yearfill.FILL_VERSION}")
                   if (m := pattern.fullmatch(p.name)) and int(m.group(1)) < schema() and (p / ".done-fill").exists())
    if not older:
        return None
    source = older[-1][1]
    say(f"{source.name}: migrating in place to schema {schema()}")
    with database.connect(settings_in(source).warehouse) as conn:
        database.migrate(conn)
    for part in ("snapshot", "watermarks"):
        (source / f".done-{part}").unlink(missing_ok=True)
    source.rename(root)
    return root


def prepare(articles: int) -> Path:
    """The cache folder of `articles`, made (or completed) first."""
    adopt_older(articles)
    root = folder(articles)
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_in(root)
    wh = settings.warehouse
    if not (root / ".done-fill").exists():
        for stale in [wh.path, wh.path.with_name(wh.path.name + ".wal"), *root.glob(".done-*")]:
            stale.unlink(missing_ok=True)
        shutil.rmtree(wh.raw_dir, ignore_errors=True)
    _part(root, "fill", lambda: yearfill.fill(wh, articles, retention_days=wh.raw_html_retention_days))
    _part(root, "keys", lambda: _keys(wh))
    _part(root, "snapshot", lambda: _snapshot(wh))
    _part(root, "search", lambda: _search(settings))
    # A year of runs leaves every check a watermark (the last run's number): one full pass stands for them, so
    # the benchmark's runs are the steady state, not the first incremental pass after an upgrade (a full one).
    _part(root, "watermarks", lambda: _watermarks(settings))
    return root


def _watermarks(settings: Settings) -> None:
    from flows.warehouse import checks

    done = checks.run_and_store(settings.warehouse, "year-full-check", alive_runs=[], full=True,
                                dedup=settings.dedup, wait=600)
    if done.failed:
        raise RuntimeError(f"the filled warehouse fails checks: {[r.name for r in done.failed]}")


def _keys(wh: WarehouseSettings) -> None:
    from flows.warehouse import keycache

    with database.connect(wh) as conn:
        keycache.refresh(conn)


def _search(settings: Settings) -> None:
    from flows.warehouse import search_index

    for stale in settings.warehouse.search_path.parent.glob(settings.warehouse.search_path.name + ".build*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted preparation
    done = search_index.refresh(settings, rebuild=True, wait=600)
    if done.mode == "skipped":
        raise RuntimeError(f"search index not built: {done.reason}")


def _snapshot(wh: WarehouseSettings) -> None:
    publish = yearfill._optional("flows.warehouse.snapshot", "publish_snapshot")
    if publish is not None:
        publish(wh)  # type: ignore[operator]


def copy(source: Path, target: Path) -> float:
    """A fresh working copy of a cache folder (see the module docstring); seconds taken."""
    start = time.perf_counter()
    shutil.rmtree(target, ignore_errors=True)
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in _LINKED:
            os.link(path, dest)
        elif path.suffix != ".toml":
            shutil.copy2(path, dest)
    for path in sorted(source.rglob("*"), reverse=True):  # day folders keep their mtimes (raw retention reads them)
        if path.is_dir():
            st = path.stat()
            os.utime(target / path.relative_to(source), (st.st_atime, st.st_mtime))
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    """`python -m benchmarks.yearcache N [N ...]`: make (or complete) the cache of each size."""
    for n in argv or ["100000"]:
        root = prepare(int(n))
        say(f"{root}: ready ({part_seconds(root)})")


if __name__ == "__main__":
    main(sys.argv[1:])
