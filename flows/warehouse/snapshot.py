"""The snapshot: a copy of the warehouse file for readers who keep a session open (`duckdb -readonly`, a BI tool)
and the fallback of every brief reader while a load holds the live file.

Why it is published on a schedule, not after every run. A copy costs the whole file: 6 GB at a year's size, so
copying it after each run that loads wrote about half a terabyte a day at a 15-minute cadence, and grew without
end. Yet most readers never need it: `database.reader` (sql, export, report, status) and the runs' hints
(flows/warehouse/runstate.py) read the LIVE file whenever no load holds it, which is nearly always (a load holds it
for a batch's transaction, a second or so), and fall back to the snapshot only for that moment. So the snapshot
is refreshed when it is older than `[warehouse] snapshot_every_hours` (default 24) and the warehouse changed since:
by the first run that ends after that (`due`), by `newsflow snapshot`, or by the maintenance flow. A run that
finds it fresh copies nothing, quiet or not, so a run's bytes written no longer grow with the warehouse (one run
an interval pays the copy, unless the maintenance flow or `newsflow snapshot` took it). `snapshot_every_hours =
0` keeps the old rule: after every run that brought something new. A missing snapshot is published by the next
run that loads. Incremental copies were rejected: DuckDB rewrites blocks in place at checkpoints, so there is no
append-only tail to copy, and a block diff must read the whole file under the lock anyway.

Why an older snapshot is safe. For people it is labelled: `newsflow sql` says it is querying the snapshot and how
old it is, and `newsflow status` shows its age. For runs it only ever supplies hints, read when the live file
stays locked past the hint wait: feed validators from it can only be older, so a feed answers 200 where it might
have answered 304, and the entries it lists again are known URLs the loader's dedup drops inside its transaction
(flows/warehouse/writer.py); the `feed_states` query drops the validators of a feed whose last fetch belongs to a
run not completed in that copy; known URLs and seed hashes from it are a subset of the live ones, so they cost a
re-fetch or a seed reload, never a skip. The loader decides for real on the live file.

Invariants kept: a reader of the snapshot never holds the live file, so it never blocks a load; the copy is made
while a connection holds the live file (no writer mid-copy), fsynced, then renamed over the previous one, so an
open reader keeps its old file until it reconnects and a crash mid-copy leaves the previous snapshot whole.
A lake needs no copy: its readers query it directly.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from contextlib import suppress
from pathlib import Path

from flows.core.errors import WarehouseError, pause_point
from flows.core.files import fsync
from flows.core.settings import WarehouseSettings
from flows.warehouse import database, identity


def last_change(path: Path) -> float | None:
    """When the DuckDB file (or its write-ahead log) was last written; None when there is no file yet."""
    times = [p.stat().st_mtime for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return max(times) if times else None


def published_at(settings: WarehouseSettings) -> float | None:
    """When the snapshot was published (its file's time); None when there is none (or for a lake)."""
    if settings.is_lake or not settings.snapshot:
        return None
    try:
        return settings.snapshot_path.stat().st_mtime
    except OSError:
        return None


def damaged(settings: WarehouseSettings) -> str | None:
    """Why the published snapshot cannot be read whole (cut short, or overwritten at its start), else None: a run
    asks at its end (identity.damaged_copy reads only the headers), so that a damaged copy is replaced then rather
    than when `snapshot_every_hours` next comes round."""
    return identity.damaged_copy(settings.snapshot_path)


def age_line(settings: WarehouseSettings, now: float | None = None) -> str:
    """One line about the snapshot for `status`: where it is, how old, and when the next one is due."""
    if settings.is_lake:
        return "Snapshot: none needed (a lake is read live)"
    if not settings.snapshot:
        return "Snapshot: off (`[warehouse] snapshot = false`): readers wait for a load to end"
    at = published_at(settings)
    if at is None:
        return f"Snapshot: none yet at {settings.snapshot_path} (the next run that loads publishes it)"
    every = settings.snapshot_every_hours
    rule = f"refreshed every {every:g} h" if every else "refreshed after each run that brings something new"
    line = f"Snapshot: {settings.snapshot_path}, published {ago((now or time.time()) - at)} ({rule})"
    if problem := damaged(settings):
        line += f"; DAMAGED ({problem}): the next run or `newsflow snapshot` publishes it again"
    return line


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def due(settings: WarehouseSettings, *, quiet: bool, now: float | None = None) -> bool:
    """Whether a run that ends now, having loaded everything, publishes the snapshot.

    Missing or damaged (cut short, overwritten): yes. With `snapshot_every_hours` > 0: when it is at least that old
    and the warehouse was written after it, whatever the run brought (so a quiet run never copies for its own
    bookkeeping rows more than once an interval). With 0: when the run brought something new (`quiet` False): a
    quiet run's rows alone never make a copy, which had quiet runs copy every other time.
    """
    if settings.is_lake or not settings.snapshot or not settings.path.exists():
        return False
    at = published_at(settings)
    if at is None or damaged(settings):
        return True
    every = settings.snapshot_every_hours * 3600
    if every > 0:
        written = last_change(settings.path)
        return (now or time.time()) - at >= every and written is not None and written > at
    return not quiet


class SnapshotRefused(WarehouseError):  # noqa: N818 - like WarehouseLocked
    """`snapshot_path` names something that is not a snapshot newsflow published: it is never replaced."""


def refusal(settings: WarehouseSettings) -> str | None:
    """Why the snapshot may not be written at `snapshot_path`, else None. The copy is renamed over whatever is there:
    only nothing, or an earlier snapshot (a DuckDB copy of a newsflow warehouse, or a copy cut short), may be. A
    setting that named the config, a seed, the search index or /dev/null had them replaced by a copy."""
    target = settings.snapshot_path
    if target.absolute() in {settings.path.absolute(), settings.search_path.absolute()}:
        return f"{target} is the warehouse or its search index, not a place for the snapshot"
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        return f"{target} exists and is not a regular file (a folder, a link, a device)"
    if identity.damaged_copy(target) is not None:  # not a DuckDB file, or a copy cut short or overwritten
        if not identity.duckdb_layout(target):
            return f"{target} exists and is not a DuckDB file"
        return None  # an earlier snapshot cut short or overwritten at its start: replaced, as it should be
    try:
        kind = identity.classify(target)
    except identity.BusyError:
        return f"{target} is held open for writing by another process: not a snapshot"
    if kind.kind != "newsflow":
        return f"{target} is a DuckDB file but not a copy of a newsflow warehouse ({kind.reason or kind.kind})"
    return None


def publish_snapshot(settings: WarehouseSettings, *, wait: float | None = None) -> Path | None:
    """Copy the warehouse to the snapshot path atomically, for readers who keep a session open.

    Readers of the snapshot never hold a lock on the live file, so they cannot block a load; each publish
    replaces the snapshot whole (os.replace), so an open reader keeps the old file until it reconnects, and a crash
    mid-copy leaves the previous snapshot in place. A lake needs no copy: its readers query it directly.
    `wait`: how long to wait for a load holding the live file (default: a load's full lock wait).
    """
    if settings.is_lake or not settings.snapshot or not settings.path.exists():
        return None
    target = settings.snapshot_path
    if problem := refusal(settings):
        raise SnapshotRefused(f"snapshot not published: {problem}; set [warehouse] snapshot_path to a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with database.connect(settings, wait=wait) as conn:
            conn.execute("checkpoint")
            # Copied while the connection holds the lock, so no writer changes the file mid-copy.
            shutil.copyfile(settings.path, tmp)
        fsync(tmp)
        pause_point("snapshot")
        os.replace(tmp, target)
    except BaseException:  # a full disk, say: no partial copy is left beside the previous snapshot
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync(target.parent)
    return target
