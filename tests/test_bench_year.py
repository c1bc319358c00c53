"""The year benchmark's filler (benchmarks/yearfill.py): a small warehouse in a year's shape that the project's own
checks accept, with the row counts of the shape (entities per article, fetches per run, ...), and a working copy
of a cache folder (benchmarks/yearcache.py) that leaves the cache as it was.

Covers: none (benchmarks/ is not a module of flows/; this tests the benchmark's fill against the real schema)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from benchmarks import yearcache, yearfill
from flows.warehouse import checks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("year")
    settings = yearcache.settings_in(root)
    yearfill.fill(settings.warehouse, 300, raw_kb=1)
    return root


def test_fill_passes_every_warehouse_check(filled: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "flows.cli", "check", "--config", str(filled / "newsflow.toml")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(checks.check_files())} checks, 0 failing" in done.stdout


def test_fill_has_the_shape_of_a_year(filled: Path) -> None:
    n = yearcache.settings_in(filled).warehouse
    got = yearfill.counts(n)
    shape = yearfill.shape(300)
    assert got["articles"] == 300
    assert got["runs"] == shape["runs"] == yearfill.RUNS_PER_DAY  # 300 articles: a tenth of a day, one day of runs
    assert got["feed_fetches"] == got["runs"] * yearfill.FEEDS
    per_run = len(checks.check_files())  # plus the rows of `newsflow check`, when it ran first
    assert got["check_results"] in (got["runs"] * per_run, (got["runs"] + 1) * per_run)
    assert got["feeds"] == yearfill.FEEDS
    assert got["duplicates"] == 30  # 10% copies
    assert 18 <= got["article_entities"] / (got["articles"] * 0.95) <= 22  # ~20 links per tagged article
    assert got["lsh_buckets"] == 32 * got["articles"]
    assert 40 <= got["shingle_samples"] / got["articles"] <= 56
    assert got["entries"] == got["page_fetches"] == got["articles"] + got["duplicates"]
    assert got["raw_archive"] == got["articles"]  # the last 90 days hold every page of a one-day warehouse
    with duckdb.connect(str(filled / yearcache.WAREHOUSE), read_only=True) as conn:
        text = conn.execute("select avg(length(text)), count(distinct text) from articles").fetchone()
        days = conn.execute("select count(distinct published_at::date) from articles").fetchone()[0]
    assert 3000 <= text[0] <= 6000 and text[1] == 300  # ~4 KB of prose, each text different
    assert days >= 1


def test_a_copy_of_the_cache_leaves_the_cache_unchanged(filled: Path, tmp_path: Path) -> None:
    archives = sorted((filled / "wh.raw").rglob("*.parquet"))
    assert archives
    yearcache.copy(filled, tmp_path / "copy")
    with duckdb.connect(str(tmp_path / "copy" / yearcache.WAREHOUSE)) as conn:
        conn.execute("delete from articles")
    with duckdb.connect(str(filled / yearcache.WAREHOUSE), read_only=True) as conn:
        assert conn.execute("select count(*) from articles").fetchone()[0] == 300
    copied = tmp_path / "copy" / "wh.raw" / archives[0].relative_to(filled / "wh.raw")
    assert copied.stat().st_ino == archives[0].stat().st_ino  # immutable archives are linked, not copied
    assert copied.stat().st_mtime == archives[0].stat().st_mtime  # retention reads their age


def test_a_cache_of_an_earlier_schema_is_migrated_in_place_not_filled_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.warehouse import database

    monkeypatch.setenv("NEWSFLOW_BENCH_CACHE", str(tmp_path))
    old = tmp_path / f"year-7-s{yearcache.schema() - 1}-f{yearfill.FILL_VERSION}"
    old.mkdir()
    with database.connect(yearcache.settings_in(old).warehouse) as conn:
        database.migrate(conn, known=database.migrations()[:-1])
    for part in ("fill", "keys", "snapshot", "watermarks"):
        (old / f".done-{part}").write_text("1\n")
    newer = tmp_path / f"year-7-s{yearcache.schema() + 1}-f{yearfill.FILL_VERSION}"  # never taken: it cannot open
    newer.mkdir()
    (newer / ".done-fill").write_text("1\n")
    root = yearcache.adopt_older(7)
    assert root == yearcache.folder(7) and not old.exists() and newer.exists()
    with duckdb.connect(str(root / yearcache.WAREHOUSE), read_only=True) as conn:
        assert conn.execute("select max(version) from schema_migrations").fetchone()[0] == yearcache.schema()
    # The snapshot (of the old schema) and the checks' watermarks (a new check has none) are made again.
    assert {p.name for p in root.glob(".done-*")} == {".done-fill", ".done-keys"}
    assert yearcache.adopt_older(7) is None
