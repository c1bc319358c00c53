"""Files: what staging, the raw archive and the snapshot share to put a file on disk before it is used, and the
bounded read of a file a user names (a config, a seed, a query file)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def fsync(path: Path) -> None:
    """Force a file's (or a directory's entries') contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NotRegularFileError(OSError):
    """The path is a folder, a FIFO, a device or a socket: `kind` says which, for the caller's one line."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class FileTooLargeError(OSError):
    """The file holds more than the caller's limit."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` (FileTooLargeError past it). Opened without
    blocking and judged on what was opened, so a path swapped meanwhile cannot slip past: a FIFO with no writer
    (a plain open waits on it for ever), a device such as /dev/zero (read until memory runs out) or a folder is
    NotRegularFileError. OSError of the open itself (missing, no permission) passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError("a folder" if stat.S_ISDIR(mode) else
                                      "not a regular file (a device, FIFO or socket)")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLargeError(f"larger than {limit:,} bytes")
    return data
