"""The end of a run: whether the snapshot is current, and the HTML report page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from flows.core.settings import Settings, WarehouseSettings
from flows.warehouse import database, reportpage


def last_change(path: Path) -> float | None:
    """When the DuckDB file (or its write-ahead log) was last written; None when there is no file yet."""
    times = [p.stat().st_mtime for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return max(times) if times else None


def snapshot_current(wh: WarehouseSettings, changed_at: float | None) -> bool:
    """True when the published snapshot was written after `changed_at`, the warehouse's last write before this
    run: it then holds every article, and a run that brought nothing new need not copy the file again."""
    if not wh.snapshot or changed_at is None or not wh.snapshot_path.exists():
        return False
    return wh.snapshot_path.stat().st_mtime > changed_at


def write_html_report(settings: Settings, log: Any) -> Path | None:
    """Rewrite the `[report] html_path` page, if set; best effort, since a run never fails for its picture."""
    out = settings.report.html_file()
    if out is None:
        return None
    try:
        reportpage.write(settings.warehouse, out)
    except (database.WarehouseError, OSError, duckdb.Error) as exc:
        log.warning("HTML report not written to %s: %s", out, exc)
        return None
    log.info("HTML report written to %s", out)
    return out

