"""Every exception newsflow raises on purpose, in one tree, and how an unexpected one becomes a row.

    NewsflowError
    ├── ConfigError            a config file, override or argument that cannot be used (one line, exit 2)
    ├── WarehouseError         the warehouse cannot be used (not a DuckDB file, newer schema, ...)
    │   ├── WarehouseLocked    another process held it for longer than the configured wait
    │   ├── WarehouseMissing   no warehouse there yet (no file, or a lake catalog nobody has initialised)
    │   └── QueryError         a user's query that does not parse, fails, or would write
    ├── SeedFormatError        a seed file that does not start with `date YYYY-MM-DD` (also a ValueError)
    └── StagingError           a staged batch that cannot be read (unknown schema version, missing files)

Two test hooks live here too, inert unless their environment variable is set: `failpoint` raises inside one unit
of work, `pause_point` holds the process at a named stage so a crash test can kill it there.

Only ConfigError and WarehouseError end a run. Anything else raised inside one unit of work (a feed, a page,
a seed file) is caught at that unit's edge and recorded as its row with the code `internal_error`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flows.core.urls import scrub

INTERNAL_ERROR = "internal_error"
_MAX_DETAIL = 500


class NewsflowError(Exception):
    """Base of the errors newsflow raises on purpose."""


class ConfigError(NewsflowError):
    """A config file that cannot be used; the message is one line naming the key."""


class WarehouseError(NewsflowError):
    """The warehouse cannot be used (not a DuckDB file, newer schema than this code, ...)."""


class WarehouseLocked(WarehouseError):  # noqa: N818 - the name says what happened
    """Another process held the warehouse for longer than the configured wait."""


class WarehouseMissing(WarehouseError):  # noqa: N818 - like WarehouseLocked
    """No warehouse there yet: a read found no file, or a lake catalog that no load has initialised."""


class SearchIndexDamaged(WarehouseError):  # noqa: N818 - like WarehouseLocked
    """A file of the search index that cannot be read whole (cut short, overwritten): rebuilt from the warehouse by
    `newsflow search --rebuild`, or by the maintenance flow's `cache` step, which checks every segment."""


class QueryError(WarehouseError):
    """A user's query that does not parse, fails, or would change something (only reading statements run)."""


class SeedFormatError(NewsflowError, ValueError):
    """A seed file that does not start with `date YYYY-MM-DD`."""


class StagingError(NewsflowError):
    """A staged batch that this version cannot read."""


def describe(exc: BaseException) -> str:
    """`Type: message` of an unexpected exception, one line, credentials scrubbed, bounded in length."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = scrub(text)
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL - 1] + "…"


def failpoint(point: str, key: str) -> None:
    """Fault-injection hook for tests of fault isolation (like `pause_point` below for crash tests).

    With NEWSFLOW_FAILPOINTS="<point>=<text>[;<point>=<text>...]", raises at `point` when `text` occurs in `key`
    (a feed name, a URL, a seed file name, a text being tagged). Unset in normal runs: one dictionary lookup.
    """
    spec = os.environ.get("NEWSFLOW_FAILPOINTS")
    if not spec:
        return
    for item in spec.split(";"):
        name, _, text = item.partition("=")
        if name == point and text and text in key:
            raise RuntimeError(f"injected fault at {point} for {text!r}")


def pause_point(name: str) -> None:
    """Crash-test hook: with NEWSFLOW_PAUSE_AT=<name>[@n]:<file>, the n-th time (default first) this process
    reaches `name` it writes <file> and waits forever, so a test can SIGKILL it at a known stage.
    """
    spec = os.environ.get("NEWSFLOW_PAUSE_AT")
    if not spec:
        return
    point, _, ready = spec.partition(":")
    point, _, nth = point.partition("@")
    if point != name:
        return
    _PAUSE_HITS[name] = _PAUSE_HITS.get(name, 0) + 1
    if _PAUSE_HITS[name] != int(nth or 1):
        return
    Path(ready).write_text(str(os.getpid()))
    while True:
        time.sleep(1)  # held here until the test kills the process


_PAUSE_HITS: dict[str, int] = {}
