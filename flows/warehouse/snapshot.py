"""The snapshot: a copy of the warehouse file, published after each run that loads everything, for readers who
keep a session open (`newsflow sql`, a BI tool, backups) without ever holding the live file's lock.

`database.reader` reads it while a run holds the live file; runs read it for their hints (flows/warehouse/runstate.py).
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from pathlib import Path

from flows.core.errors import pause_point
from flows.core.files import fsync
from flows.core.settings import WarehouseSettings
from flows.warehouse import database


def publish_snapshot(settings: WarehouseSettings) -> Path | None:
    """Copy the warehouse to the snapshot path atomically, for readers who keep a session open.

    Readers of the snapshot never hold a lock on the live file, so they cannot block a load; each run replaces
    the snapshot whole (os.replace), so an open reader keeps the old file until it reconnects, and a crash
    mid-copy leaves the previous snapshot in place. A lake needs no copy: its readers query it directly.
    """
    if settings.is_lake or not settings.snapshot or not settings.path.exists():
        return None
    target = settings.snapshot_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with database.connect(settings) as conn:
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
