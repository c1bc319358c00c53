"""The write guard: what the warehouse owns, and where a command may write a file a user named.

Every output path a user gives (`export --out`, `report --out`, `[report] html_path`) goes through
`check_output` before any work, and is written through `Outputs`:
- a path that is, or is inside, something the warehouse owns is refused: the DuckDB file and every file beside
  it named `<file>.*` (its WAL, lock files, keys cache, demo marker, temp folder), the same for the snapshot
  and a lake's local catalog, the raw archive folder `<stem>.raw/`, the staging folder, a lake's local data
  folder, the seeds folder, and (for any output but the report) the `[report] html_path` page;
- an existing path that is not a regular file (a folder, a device such as /dev/null, a FIFO) is refused;
- an existing regular file is replaced only when it is recognisably this command's own earlier output: a
  newsflow report page for `report`, and for `export` a Parquet or CSV file holding the very columns being
  exported; anything else is refused with what to do (remove it or choose another path);
- a symbolic link is followed: the file it points to is checked and replaced, the link stays.
Writes are atomic: a temp file beside the target, renamed over it once every output of the command is written;
on any failure every temp file and every folder the command created are removed.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from flows.core.errors import NewsflowError


class WarehousePaths(Protocol):
    """What the guard reads of `WarehouseSettings` (a protocol, so settings may use the guard at load time)."""

    path: Path
    snapshot_path: Path
    staging_dir: Path
    catalog: str

    @property
    def search_path(self) -> Path: ...
    @property
    def search_segments_dir(self) -> Path: ...

    @property
    def raw_dir(self) -> Path: ...
    @property
    def is_lake(self) -> bool: ...
    @property
    def lake_data_path(self) -> str: ...


class SettingsPaths(Protocol):
    """What the guard reads of `Settings`: the warehouse, `pipeline.seeds_dir` and `report.html_file()`."""

    @property
    def warehouse(self) -> WarehousePaths: ...
    @property
    def pipeline(self) -> Any: ...
    @property
    def report(self) -> Any: ...

Kind = Literal["report", "parquet", "csv"]
REPORT_TITLE = "<title>newsflow report</title>"
_SNIFF = 8192  # bytes read to recognise an earlier output


class OutputRefused(NewsflowError, ValueError):  # noqa: N818 - the name says what happened
    """An output path newsflow will not write: the message is one line saying why and what to do."""


@dataclass(frozen=True)
class Owned:
    """Paths the warehouse owns: `trees` (the path and everything inside it) and `families` (a file, and every
    file or folder beside it named `<its name>.*`), each with what it is, for the refusal."""
    trees: tuple[tuple[Path, str], ...] = ()
    families: tuple[tuple[Path, str], ...] = ()
    report_page: Path | None = None

    def owner(self, path: Path, kind: Kind) -> str | None:
        """What `path` (resolved) is or is inside of, when the warehouse owns it; None when it does not."""
        chain = [path, *path.parents]
        if kind != "report" and self.report_page is not None and path == self.report_page:
            return "the [report] html_path page"
        for root, what in self.trees:
            if root in chain:
                return what if root == path else f"inside {what}"
        for family, what in self.families:
            for p in chain:
                if p.parent == family.parent and (p.name == family.name or p.name.startswith(family.name + ".")):
                    return what if p.name == family.name else f"a file of {what} ({family.name}.*)"
        return None

    def same_file(self, path: Path) -> str | None:
        """What an existing `path` is a hard link to, among the owned files that exist."""
        for p, what in (*self.trees, *self.families):
            try:
                if os.path.samefile(p, path):
                    return what
            except OSError:
                continue
        return None


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def of_warehouse(wh: WarehousePaths, *, seeds_dir: Path | None = None, report_page: Path | None = None) -> Owned:
    """What a warehouse's settings say it owns (paths resolved, so a link or `..` cannot hide one)."""
    families = [(_real(wh.path), f"the warehouse {wh.path.name}"),
                (_real(wh.snapshot_path), f"the warehouse snapshot {wh.snapshot_path.name}"),
                # The search index's head, and its lock and temporary files (<index>.*).
                (_real(wh.search_path), "the warehouse's search index")]
    trees = [(_real(wh.raw_dir), "the warehouse's raw archive folder"),
             (_real(wh.search_segments_dir), "the warehouse's search index"),
             (_real(wh.staging_dir), "the warehouse's staging folder"),
             (_real(wh.path.parent / f"{wh.path.stem}.staging"), "the warehouse's staging folder")]
    if wh.is_lake:
        catalog = wh.catalog.removeprefix("sqlite:")
        if catalog and not catalog.startswith(("postgres:", "postgresql:")) and "://" not in catalog:
            families.append((_real(Path(catalog)), "the lake's catalog"))
            trees += [(_real(Path(catalog + end)), "the lake's catalog journal")
                      for end in ("-wal", "-journal", "-shm")]
        if "://" not in wh.lake_data_path:
            trees.append((_real(Path(wh.lake_data_path)), "the lake's data folder"))
    if seeds_dir is not None:
        trees.append((_real(seeds_dir), "the seeds folder"))
    return Owned(tuple(trees), tuple(families), _real(report_page) if report_page else None)


def of_settings(settings: SettingsPaths) -> Owned:
    return of_warehouse(settings.warehouse, seeds_dir=settings.pipeline.seeds_dir,
                        report_page=settings.report.html_file())


def problem(path: Path, owned: Owned, kind: Kind, columns: Sequence[str] = ()) -> str | None:
    """Why `path` must not be written as a `kind` output (one line, saying what to do), or None when it may."""
    if not path.name:
        return f"{str(path)!r} is not a file path"
    target = _real(path)
    what = owned.owner(target, kind)
    if what:
        return f"{path}: is {what}; newsflow never writes its output there, choose another path"
    try:
        st = os.stat(target)
    except OSError:  # nothing there (or a parent that is a file, or unreadable): the write says why it fails
        return None
    if stat.S_ISDIR(st.st_mode):
        return f"{path}: is a folder; give a file path"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: is not a regular file (a device, FIFO or socket); newsflow writes only regular files"
    what = owned.same_file(target)
    if what:
        return f"{path}: is a link to {what}; newsflow never writes its output there, choose another path"
    if not _own_output(target, kind, columns):
        earlier = "a newsflow report page" if kind == "report" else f"an earlier export of these columns ({kind})"
        return f"{path}: exists and is not {earlier}; remove it or choose another path"
    return None


def check_output(path: Path, owned: Owned, kind: Kind, columns: Sequence[str] = ()) -> Path:
    """The file to write for `path` (a link resolved), or OutputRefused saying why not."""
    why = problem(path, owned, kind, columns)
    if why:
        raise OutputRefused(why)
    return _real(path)


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_SNIFF)


def _own_output(path: Path, kind: Kind, columns: Sequence[str]) -> bool:
    """Whether the existing regular file at `path` is an earlier output of the same kind (and columns)."""
    try:
        if kind == "report":
            head = _head(path).decode("utf-8", "replace")
            return head.lower().startswith("<!doctype html>") and REPORT_TITLE in head
        if kind == "csv":
            first = _head(path).decode("utf-8", "replace").splitlines()
            return bool(first) and next(csv.reader(io.StringIO(first[0]))) == list(columns)
        import pyarrow.parquet as pq

        return pq.read_schema(path).names == list(columns)
    except Exception:  # unreadable, not Parquet, not UTF-8...: not recognisably ours, so it is kept
        return False


@dataclass
class Outputs:
    """The files one command writes, all or nothing: `temp_for` gives a temp file beside each target (folders
    made on the way are remembered); `commit` renames them over their targets; `discard` removes every temp
    file and every folder this made."""
    _pending: list[tuple[Path, Path]] = field(default_factory=list)
    _made: list[Path] = field(default_factory=list)

    def temp_for(self, target: Path) -> Path:
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            self._made.append(folder)
        while True:  # a new file of our own (O_EXCL), with the permissions the umask gives any new file
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            self._pending.append((tmp, target))
            return tmp

    def commit(self) -> None:
        for tmp, target in self._pending:
            os.replace(tmp, target)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:  # something else was put there meanwhile: it stays
                pass
        self._made.clear()


@contextmanager
def writing() -> Iterator[Outputs]:
    """Outputs committed when the block ends normally, discarded when it raises (or is interrupted)."""
    out = Outputs()
    try:
        yield out
        out.commit()
    except BaseException:
        out.discard()
        raise
