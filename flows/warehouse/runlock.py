"""One ingest at a time per warehouse: an OS file lock that the kernel releases if the process dies.

Stage-only shard runs take one lock per shard instead (`name`), so the shards of one fan-out run side by side
while two runs of the same shard still exclude each other; the loader keeps the warehouse's own lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.core.errors import WarehouseError


@contextmanager
def run_lock(db_path: Path, name: str | None = None) -> Iterator[bool]:
    """Yields True when this process holds the lock, False when another run does (nothing is waited for)."""
    path = lock_path(db_path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except IsADirectoryError:  # every run and maintenance would stop here: say what to do, once
        raise WarehouseError(f"{path}: a folder where newsflow keeps its run lock (a file); move it away or remove "
                             "it, and the next run makes the lock again") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_path(db_path: Path, name: str | None = None) -> Path:
    """The lock file of the warehouse (`name` None) or of one named part of it, e.g. `shard-1-of-4`."""
    return db_path.with_name(f"{db_path.name}.{name}.runlock" if name else f"{db_path.name}.runlock")


def shards_alive(db_path: Path) -> list[str]:
    """Names of the shard locks some process holds right now (a stage-only run is staging)."""
    alive = []
    for path in sorted(db_path.parent.glob(f"{db_path.name}.shard-*.runlock")):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            alive.append(path.name.removeprefix(f"{db_path.name}.").removesuffix(".runlock"))
        finally:
            os.close(fd)
    return alive


def held(db_path: Path, name: str | None = None) -> bool:
    """Whether some process holds the lock now; creates nothing (a missing lock file: nobody ever took it)."""
    try:
        fd = os.open(lock_path(db_path, name), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def run_lock_name(parameters: dict[str, object]) -> str | None:
    """The lock a run with these recorded parameters held: its shard's when stage-only, else the warehouse's."""
    if not parameters.get("stage_only"):
        return None
    shard = str(parameters.get("shard") or "1/1").replace(" ", "")
    k, _, n = shard.partition("/")
    return f"shard-{k}-of-{n}"
