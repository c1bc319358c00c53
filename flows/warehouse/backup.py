"""Backups: `newsflow backup --out DIR` and `newsflow restore --from DIR` (docs/operations.md, "Backups").

A backup holds what cannot be rebuilt: the warehouse (the DuckDB file, or a lake's local catalog and its data
files), the raw-HTML archive `<stem>.raw/`, and the batches waiting in the staging folder; a `manifest.json` lists
each file with its size and sha256, the warehouse kind, its schema version and article count. Left out because
they are rebuilt from the warehouse: the dedup lookup cache `<file>.keys/` (the next load reads the tables, the
maintenance flow rebuilds it), the search index (`newsflow search --rebuild`, or the next run), the snapshot
(published again by restore).

Consistency while runs continue. Staged batches are copied first, then the warehouse: a batch loaded meanwhile
is in both, and loading it twice changes nothing. The DuckDB file (with its WAL, if a run left one) is copied under
a READ-ONLY connection: it shares the lock with other readers but no load commits while it is held, so the copy
is one committed state. Holding it costs the copy's time (0.15 s at 100k articles here; a file copy, measured ~50x
faster than `COPY FROM DATABASE`, which re-encodes every row and held the file 14 s at 100k); a load meeting it
waits with backoff and, past its lock wait, stages its batch for the next run, as with any reader. The run lock is
not taken: a run that found it busy would skip its whole turn. The copy is then checkpointed in the backup folder,
so a backup is one file. A lake's catalog is copied the same way (a DuckDB catalog under a read-only connection;
SQLite through its online backup API), then its data folder: data files are immutable and a committed catalog
only references files written before it, so every file the copied catalog needs is there (files newer than it are
copied too and unused). The raw archive is copied last: its files are written before the rows that point at them.

Restore verifies every checksum before it writes anything, refuses an existing warehouse without `force`, and a
file that is not a newsflow warehouse always; it takes the run lock (so no run starts meanwhile), puts the side
files (raw archive, staged batches, a lake's data files) in place first, then the warehouse itself by one atomic
rename (temp file beside it, fsynced), removes the caches of the previous warehouse, and publishes the snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.core import owned
from flows.core.errors import WarehouseError, pause_point
from flows.core.files import fsync
from flows.core.settings import Settings, WarehouseSettings
from flows.warehouse import database, identity, lake, runlock, snapshot, staging

FORMAT = 1
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class BackupError(WarehouseError):
    """A backup or restore refused or failed: one line saying why and what to do (a user error, exit 2)."""


@dataclass(frozen=True)
class Item:
    path: str  # inside the backup folder, '/'-separated
    role: str  # warehouse | catalog | data | raw | staging
    size: int
    sha256: str


@dataclass
class Manifest:
    kind: str  # duckdb | ducklake
    catalog_kind: str | None  # a lake's: duckdb | sqlite
    schema_version: int
    articles: int
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    version: int = FORMAT
    source: str = ""
    files: list[Item] = field(default_factory=list)

    def bytes(self) -> int:
        return sum(i.size for i in self.files)


def _warehouse_name(m: Manifest) -> str:
    return "warehouse.duckdb" if m.kind == "duckdb" else f"catalog.{m.catalog_kind}"


# ------------------------------------------------------------------------------------------------ backup


def check_out(settings: Settings, out: Path) -> Path:
    """The folder to create for `out`; BackupError when the write guard refuses it or something is there."""
    target = Path(os.path.realpath(out))
    what = owned.of_settings(settings).owner(target, "parquet")
    if what:
        raise BackupError(f"{out}: is {what}; newsflow never writes a backup there, choose another folder")
    if target.exists() and not target.is_dir():
        raise BackupError(f"{out}: exists and is not a folder; give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise BackupError(f"{out}: the folder is not empty; give a new or empty folder (each backup its own)")
    return target


def backup(settings: Settings, out: Path, *, wait: float | None = None) -> Manifest:
    """Write a consistent backup of the warehouse into the new folder `out` (made whole, by a rename, or not at
    all); `wait`: how long to wait for a load holding the warehouse (default: a load's full lock wait)."""
    wh = settings.warehouse
    target = check_out(settings, out)
    if not database.exists(wh):
        raise BackupError(f"{lake.display_name(wh.catalog) if wh.is_lake else wh.path}: no warehouse to back up")
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    work.mkdir()
    try:
        _copy_staged(wh.staging_dir, work / "staging")
        wait = wh.waits.load if wait is None else wait
        manifest = _copy_lake(wh, work, wait) if wh.is_lake else _copy_file(wh, work, wait)
        _copy_tree(wh.raw_dir, work / "raw", lambda p: p.suffix == ".parquet")
        manifest.source = lake.display_name(wh.catalog) if wh.is_lake else str(wh.path)
        manifest.files = [_item(work, p) for p in sorted(work.rglob("*")) if p.is_file()]
        (work / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1) + "\n")
        for p in (*work.rglob("*"), work):
            fsync(p)
        os.replace(work, target)  # an empty folder there is replaced; a folder made meanwhile is an error
        fsync(target.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return manifest


def _copy_file(wh: WarehouseSettings, work: Path, wait: float) -> Manifest:
    """The DuckDB file and its WAL, copied under a read-only connection, then checkpointed into one file."""
    copy = work / "warehouse.duckdb"
    with database.connect(wh, read_only=True, wait=wait) as conn:
        version = database.schema_version(conn)
        if version == 0:
            raise BackupError(f"{wh.path}: an empty database, not a newsflow warehouse yet: nothing to back up")
        articles = conn.execute(database.query("article_count")).fetchone()[0]
        pause_point("backup-copy")  # tests: a load meeting the backup here waits, then stages its batch
        shutil.copyfile(wh.path, copy)
        wal = wh.path.with_name(wh.path.name + ".wal")
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    with contextlib.closing(duckdb.connect(str(copy))) as conn:  # our own file: folds the WAL in
        conn.execute("checkpoint")
    return Manifest("duckdb", None, version, articles)


def _copy_lake(wh: WarehouseSettings, work: Path, wait: float) -> Manifest:
    """A lake's local catalog (a committed state), then every file of its data folder."""
    kind = lake.catalog_kind(wh.catalog)
    local = lake.catalog_file(wh)
    if local is None:
        raise BackupError("a PostgreSQL catalog is backed up with pg_dump, and its data folder with rsync "
                          "(docs/operations.md); `newsflow backup` copies lakes with a local catalog")
    if "://" in wh.lake_data_path:
        raise BackupError(f"{wh.lake_data_path}: a remote data folder is backed up by its store's own tools "
                          "(docs/operations.md); `newsflow backup` copies local lakes")
    copy = work / f"catalog.{kind}"
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(f"file:{local}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(copy)) as dst:
            src.backup(dst)
    else:
        plain = wh.model_copy(update={"backend": "duckdb"})
        with database.connect(plain, read_only=True, wait=wait, path=local):
            shutil.copyfile(local, copy)
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(local.with_name(local.name + ".wal"), copy.with_name(copy.name + ".wal"))
        with contextlib.closing(duckdb.connect(str(copy))) as conn:
            conn.execute("checkpoint")
    facts = _lake_facts(wh, copy)
    _copy_tree(Path(wh.lake_data_path), work / "data", lambda p: True)
    return Manifest("ducklake", kind, *facts)


def _lake_facts(wh: WarehouseSettings, catalog: Path) -> tuple[int, int]:
    """Schema version and article count of the lake as its catalog copy `catalog` has it (the data folder is the
    one the catalog names: a catalog stores its data path, restore rewrites it)."""
    prefix = "sqlite:" if wh.catalog.startswith("sqlite:") else ""
    there = wh.model_copy(update={"catalog": prefix + str(catalog), "data_path": wh.lake_data_path})
    with database.connect(there, read_only=True, wait=0) as conn:
        return database.schema_version(conn), conn.execute(database.query("article_count")).fetchone()[0]


def _copy_staged(staging_dir: Path, dest: Path) -> None:
    """Complete staged batches; one loaded (and removed) while it is copied is dropped: the warehouse copy made
    after it holds its rows. The quarantined ones too (`quarantine/<batch>`): rows no warehouse holds yet, waiting
    for someone to mend and move them back (docs/operations.md)."""
    batches = [(b, dest / b.name) for b in staging.pending(staging_dir)]
    batches += [(b, dest / staging.QUARANTINE / b.name) for b in staging.quarantined(staging_dir)]
    for batch, target in batches:
        try:
            shutil.copytree(batch, target)
        except (FileNotFoundError, shutil.Error):
            shutil.rmtree(target, ignore_errors=True)


def _copy_tree(src: Path, dest: Path, keep: object) -> None:
    """Every file under `src` that `keep` accepts (never a `.tmp` being written); one removed meanwhile (a day of
    the raw archive past its retention, say) is skipped."""
    if not src.is_dir():
        return
    for path in sorted(src.rglob("*")):
        if path.name.endswith(".tmp") or not path.is_file() or not keep(path):  # type: ignore[operator]
            continue
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(path, out)


def _item(root: Path, path: Path) -> Item:
    role = path.relative_to(root).parts[0]
    role = {"warehouse.duckdb": "warehouse", "catalog.duckdb": "catalog", "catalog.sqlite": "catalog"}.get(role, role)
    return Item(path.relative_to(root).as_posix(), role, path.stat().st_size, sha256(path))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- restore


def read_manifest(src: Path) -> Manifest:
    """The backup's manifest, every file checked against it (size and sha256); BackupError naming the first
    problem. Nothing is written."""
    try:
        data = json.loads((src / MANIFEST).read_text())
        files = [Item(**i) for i in data.pop("files")]
        manifest = Manifest(**data, files=files)
    except FileNotFoundError:
        raise BackupError(f"{src}: not a newsflow backup (no {MANIFEST})") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BackupError(f"{src}/{MANIFEST}: unreadable ({database.first_line(exc)}); not a usable backup") from None
    if manifest.version != FORMAT:
        raise BackupError(f"{src}: backup format {manifest.version}, this newsflow reads format {FORMAT}")
    if not any(i.path == _warehouse_name(manifest) for i in files):
        raise BackupError(f"{src}: the manifest lists no {_warehouse_name(manifest)}; not a usable backup")
    for item in files:
        path = src / item.path
        if ".." in Path(item.path).parts or Path(item.path).is_absolute():
            raise BackupError(f"{src}: the manifest names {item.path!r}, outside the backup; refused")
        if not path.is_file():
            raise BackupError(f"{src}: {item.path} is missing; the backup is damaged, nothing was restored")
        if path.stat().st_size != item.size or sha256(path) != item.sha256:
            raise BackupError(f"{src}: {item.path} does not match its checksum; the backup is damaged, nothing "
                              "was restored")
    return manifest


def restore(settings: Settings, src: Path, *, force: bool = False) -> Manifest:
    """Put the backup in `src` in place of the configured warehouse (see the module docstring)."""
    wh = settings.warehouse
    manifest = read_manifest(src)
    _check_kind(wh, manifest)
    busy = f"a run holds {wh.path} (its run lock); restore when it ends"
    if runlock.held(wh.path):
        raise BackupError(busy)
    _check_target(wh, force)  # refused before the run lock's file is made: a refusal writes nothing
    if manifest.kind == "duckdb":
        _check_source(src / "warehouse.duckdb", manifest)
    with runlock.run_lock(wh.path) as free:
        if not free:
            raise BackupError(busy)
        items = {i.path: i for i in manifest.files}
        _place_side_files(wh, src, items)
        if manifest.kind == "duckdb":
            _put(src / "warehouse.duckdb", wh.path, remove_wal=True)
            shutil.rmtree(wh.path.with_name(wh.path.name + ".keys"), ignore_errors=True)
        else:
            local = lake.catalog_file(wh)
            assert local is not None
            _put(src / _warehouse_name(manifest), local, remove_wal=True,
                 prepare=lambda tmp: _set_data_path(tmp, manifest.catalog_kind, wh.lake_data_path))
        # The search index of the warehouse before: rebuilt on demand (its head first, so no reader follows it).
        for p in (wh.search_path, wh.search_path.with_name(wh.search_path.name + ".wal")):
            p.unlink(missing_ok=True)
        shutil.rmtree(wh.search_segments_dir, ignore_errors=True)
        _verify(wh, manifest)
    if manifest.kind == "duckdb":
        snapshot.publish_snapshot(wh)
    return manifest


def _check_kind(wh: WarehouseSettings, m: Manifest) -> None:
    have = "ducklake" if wh.is_lake else "duckdb"
    if m.kind != have:
        raise BackupError(f"the backup is of a {m.kind} warehouse and the config's is {have}; restore it with a "
                          "config of the same backend")
    if wh.is_lake:
        if lake.catalog_file(wh) is None or "://" in wh.lake_data_path:
            raise BackupError("restore needs a local lake catalog and data folder (a PostgreSQL catalog is "
                              "restored with pg_restore; docs/operations.md)")
        if lake.catalog_kind(wh.catalog) != m.catalog_kind:
            raise BackupError(f"the backup's lake catalog is {m.catalog_kind} and the config's is "
                              f"{lake.catalog_kind(wh.catalog)}; restore it with a config of the same kind")


def _check_target(wh: WarehouseSettings, force: bool) -> None:
    """Refuse someone else's file always, an existing warehouse without `force`, one held open by anyone."""
    target = lake.catalog_file(wh) if wh.is_lake else wh.path
    assert target is not None
    try:
        verdict = (identity.classify_catalog(target, lake.catalog_kind(wh.catalog)) if wh.is_lake
                   else identity.classify(target))
    except identity.BusyError:
        raise BackupError(f"{target}: held open by another process; restore when it is closed") from None
    damaged = verdict.kind == "foreign" and verdict.reason.startswith("truncated")  # ours, cut short
    if verdict.kind == "foreign" and not damaged:
        raise BackupError(f"{target}: not a newsflow warehouse ({verdict.reason}); newsflow never replaces it")
    if verdict.kind in ("missing", "empty"):
        return
    if not force:
        raise BackupError(f"{target}: a warehouse is there; restoring replaces it: add --force to do so")
    if wh.is_lake and lake.catalog_kind(wh.catalog) == "sqlite":
        return  # SQLite lets readers and a writer share it: stop the runs first (docs/operations.md)
    plain = wh.model_copy(update={"backend": "duckdb"})
    try:  # nobody may hold it: a writer would go on writing the file it has open
        with database.connect(plain, wait=0, path=target) as conn:
            conn.execute("checkpoint")
    except database.WarehouseLocked:
        raise BackupError(f"{target}: held open by another process; restore when it is closed") from None
    except WarehouseError:
        if not damaged:
            raise


def _place_side_files(wh: WarehouseSettings, src: Path, items: dict[str, Item]) -> None:
    """The raw archive, staged batches and a lake's data files: each file put in place unless the same is there
    (files of a previous warehouse that the backup does not name stay: nothing points at them)."""
    roots = {"raw": wh.raw_dir, "staging": wh.staging_dir}
    if wh.is_lake:
        roots["data"] = Path(wh.lake_data_path)
    for rel, item in items.items():
        role, _, rest = rel.partition("/")
        if role not in roots or not rest:
            continue
        dest = roots[role] / rest
        if dest.is_file() and dest.stat().st_size == item.size and sha256(dest) == item.sha256:
            continue
        _put(src / rel, dest)


def _put(src: Path, dest: Path, *, remove_wal: bool = False, prepare: Callable[[Path], None] | None = None) -> None:
    """Copy `src` to `dest` by a temp file beside it (`prepare` changes the copy), fsynced, then renamed over it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.restore-{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(src, tmp)
        if prepare is not None:
            prepare(tmp)
        fsync(tmp)
        if remove_wal:  # a WAL of the file before must never be replayed onto the restored one
            for end in (".wal", "-wal", "-shm", "-journal"):
                dest.with_name(dest.name + end).unlink(missing_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync(dest.parent)


def _set_data_path(catalog: Path, kind: str | None, data_path: str) -> None:
    """Point a restored lake catalog at the config's data folder: DuckLake stores the folder it was made with, and
    its files' paths relative to it, so the lake works wherever its files are put."""
    sql = "update ducklake_metadata set value = ? where key = 'data_path' and scope is null"
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(catalog)) as db, db:
            db.execute(sql, [data_path])
        return
    with contextlib.closing(duckdb.connect(str(catalog))) as conn:
        conn.execute(sql, [data_path])
        conn.execute("checkpoint")


def _check_source(path: Path, m: Manifest) -> None:
    """Refuse a backup's warehouse file that is not the warehouse its manifest describes, before anything is put in
    place: the manifest's sizes and hashes can be rewritten with the file (a copy cut short, another DuckDB file),
    and `--force` then replaced the live warehouse with it and failed only after."""
    try:
        verdict = identity.classify(path)
    except identity.BusyError as exc:
        raise BackupError(f"{path} is held by another process: {exc}") from None
    if verdict.kind != "newsflow":
        raise BackupError(f"{path} is not a newsflow warehouse ({verdict.reason or verdict.kind}); nothing restored")
    with duckdb.connect(str(path), read_only=True) as conn:
        got = database.schema_version(conn), conn.execute(database.query("article_count")).fetchone()[0]
    if got != (m.schema_version, m.articles):
        raise BackupError(f"{path} holds schema {got[0]} with {got[1]} articles where the manifest says "
                          f"{m.schema_version} with {m.articles}; nothing restored")


def _verify(wh: WarehouseSettings, m: Manifest) -> None:
    with database.connect(wh, read_only=True, wait=wh.waits.read) as conn:
        got = database.schema_version(conn), conn.execute(database.query("article_count")).fetchone()[0]
    if got != (m.schema_version, m.articles):
        raise BackupError(f"restored, but the warehouse reads schema {got[0]} with {got[1]} articles where the "
                          f"backup says {m.schema_version} with {m.articles}")

