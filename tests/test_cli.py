"""The `newsflow` command as a user runs it: a real subprocess for the demo, then sql and status on its warehouse.

Covers: flows.cli.entry, flows.ops.status, flows.ops.demo
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.core.settings import PROJECT_ROOT


def newsflow(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`newsflow demo` exactly as the README runs it, on a free port and into a temporary warehouse."""
    tmp = tmp_path_factory.mktemp("cli")
    db = tmp / "demo.duckdb"
    proc = newsflow("demo", "--warehouse", str(db), "--port", "0",
                    env={"PREFECT_HOME": str(tmp / "prefect"), "NEWSFLOW_PIPELINE__WORKERS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "completed" in proc.stdout
    assert "duplicates_near=4" in proc.stdout
    return db


def test_sql_prints_a_table(demo_db: Path) -> None:
    proc = newsflow("sql", "--warehouse", str(demo_db), "select count(*) as n from articles where is_seed")
    assert proc.returncode == 0, proc.stderr
    assert "│" in proc.stdout and " 1 " in proc.stdout


def test_sql_json_output_and_file_queries(demo_db: Path, tmp_path: Path) -> None:
    q = tmp_path / "q.sql"
    q.write_text("select method, count(*) as n from duplicates group by method order by method")
    proc = newsflow("sql", "--warehouse", str(demo_db), "--format", "json", f"@{q}")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"method": "exact", "n": 1}, {"method": "near", "n": 4}]


def test_sql_is_read_only(demo_db: Path) -> None:
    proc = newsflow("sql", "--warehouse", str(demo_db), "delete from articles")
    assert proc.returncode != 0
    assert "read-only" in proc.stderr.lower()
    check = newsflow("sql", "--warehouse", str(demo_db), "--format", "csv", "select count(*) from articles")
    assert check.stdout.splitlines()[1] == "17"


def test_status_shows_runs_and_failing_feeds(demo_db: Path) -> None:
    proc = newsflow("status", "--warehouse", str(demo_db))
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout
    assert "http_404" in proc.stdout and "not_a_feed" in proc.stdout


def test_sql_on_a_missing_warehouse_is_one_line(tmp_path: Path) -> None:
    proc = newsflow("sql", "--warehouse", str(tmp_path / "none.duckdb"), "select 1")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no warehouse yet" in proc.stderr
