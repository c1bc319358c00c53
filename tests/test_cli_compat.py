"""Any SQL client can open the warehouse: the DuckDB CLI from PyPI (dev extra `duckdb-cli`, often older than
the duckdb library that writes the file) reads a pipeline-written warehouse and its snapshot, views included.

Covers: flows.warehouse.database
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import demo_filled

from flows.core.settings import WarehouseSettings
from flows.warehouse import database

CLI = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")


def cli(db: Path, sql: str) -> subprocess.CompletedProcess[str]:
    assert CLI, "the DuckDB CLI is missing: pip install -e '.[dev]' installs duckdb-cli"
    return subprocess.run([CLI, "-readonly", "-csv", "-noheader", str(db), "-c", sql], capture_output=True,
                          text=True, timeout=60)


def cli_version() -> tuple[int, ...]:
    out = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, timeout=30).stdout
    return tuple(int(x) for x in out.split()[0].lstrip("v").split(".")[:3])


def lib_version() -> tuple[int, ...]:
    return tuple(int(x) for x in duckdb.__version__.split(".")[:3])


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    return demo_filled(tmp_path_factory)


@pytest.mark.parametrize("which", ["live", "snapshot"])
def test_the_cli_reads_a_pipeline_written_warehouse(demo_db: Path, which: str) -> None:
    db = demo_db if which == "live" else demo_db.with_name(demo_db.stem + ".snapshot.duckdb")
    with duckdb.connect(str(db), read_only=True) as conn:
        expected = conn.execute("select count(*) from articles").fetchone()[0]
        copies = conn.execute("select sum(copies) from syndication").fetchone()[0]
    done = cli(db, "select count(*) from articles; select sum(copies) from syndication;")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(expected), str(copies)]


def test_the_storage_setting_is_what_makes_the_file_readable(tmp_path: Path) -> None:
    settings = WarehouseSettings(path=tmp_path / "compat.duckdb", staging_dir=tmp_path / "s",
                                 snapshot_path=tmp_path / "snap.duckdb")
    assert settings.storage_compatibility == "v1.4.0"
    assert database.ensure_ready(settings)
    assert cli(settings.path, "select count(*) from article_provenance").stdout.strip() == "0"
    if cli_version() >= lib_version():
        pytest.skip("this CLI is as new as the library: any format opens")
    latest = settings.model_copy(update={"path": tmp_path / "latest.duckdb", "storage_compatibility": "latest"})
    assert database.ensure_ready(latest)
    refused = cli(latest.path, "select 1")
    assert refused.returncode != 0 and "version" in refused.stderr + refused.stdout
