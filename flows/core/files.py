"""Durable files: what staging, the raw archive and the snapshot share to put a file on disk before it is used."""

from __future__ import annotations

import os
from pathlib import Path


def fsync(path: Path) -> None:
    """Force a file's (or a directory's entries') contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
