"""A warehouse filled by one demo ingest, built once per test session and copied into each test that needs it.

Runs use one worker process (NEWSFLOW_PIPELINE__WORKERS=1) so spaCy loads once, in the test process.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer

FAST_ENV = {"NEWSFLOW_PIPELINE__WORKERS": "1"}
_BUILT: dict[str, Path] = {}


def run_ingest(config: Path, warehouse: Path, env: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    """One in-process `ingest` flow run (needs the prefect_harness fixture) with extra environment settings."""
    from flows.run.ingest import ingest

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**FAST_ENV, **(env or {})}.items():
            mp.setenv(key, value)
        return ingest(config=str(config), warehouse_path=str(warehouse), **params)


def demo_filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the session's demo-filled warehouse (do not write to it: copy it with `copy_demo`)."""
    if "db" not in _BUILT:
        root = tmp_path_factory.mktemp("demo-filled")
        db = root / "demo.duckdb"
        with LocalServer(DEMO_DATA) as server:
            summary = run_ingest(demo_config(server, db, root), db)
        assert summary["status"] == "completed", summary
        _BUILT["db"] = db
    return _BUILT["db"]


def copy_demo(tmp_path_factory: pytest.TempPathFactory, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo_filled(tmp_path_factory), dest)
    return dest
