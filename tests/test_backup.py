"""Backups and the scheduled snapshot on real files: `newsflow backup` while a real `newsflow ingest` process holds
the writer inside its transaction, a load meeting a backup (staged, nothing lost), restores into a fresh folder,
over a live warehouse (refused without --force), from a damaged backup (refused), DuckLake round trips, and when
a run publishes the snapshot.

Covers: flows.warehouse.backup, flows.cli.backup_commands
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from demo_warehouse import FAST_ENV, copy_demo
from test_ducklake import _batch, _lake
from test_locking import holding

from flows.cli.entry import main
from flows.core.sections import DedupSettings
from flows.core.settings import Settings, WarehouseSettings, load_settings
from flows.ops.localserver import LocalServer
from flows.warehouse import backup, database, runlock, snapshot, staging, store, writer

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def _config(root: Path, db: Path | None = None) -> Path:
    """A config whose warehouse lives in `root` (a fresh machine's folder when nothing is there yet)."""
    root.mkdir(parents=True, exist_ok=True)
    db = db or root / "wh.duckdb"
    path = root / "newsflow.toml"
    path.write_text(f'[warehouse]\npath = "{db}"\nstaging_dir = "{root / "wh.staging"}"\n'
                    f'snapshot_path = "{root / "wh.snapshot.duckdb"}"\nlock_wait_seconds = 0.5\n'
                    f'[pipeline]\nseeds_dir = "{root / "seeds"}"\n')
    return path


def _ids(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("select article_id, url from articles order by article_id").fetchall()


def _wait_for(condition: Any, proc: subprocess.Popen[bytes], what: str, deadline_s: float = 180) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval of the condition, not synchronisation by itself


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- when a run publishes the snapshot

def test_the_snapshot_is_due_when_missing_or_past_its_interval_after_a_change(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "st",
                           snapshot_path=tmp_path / "snap.duckdb")
    assert not snapshot.due(wh, quiet=False)  # no warehouse yet: nothing to copy
    assert database.ensure_ready(wh)
    assert snapshot.due(wh, quiet=True)  # missing: even a quiet run publishes it
    assert snapshot.publish_snapshot(wh) == wh.snapshot_path
    assert not snapshot.due(wh, quiet=False)  # fresh: a run with new articles does not copy it
    now = time.time()
    day_ago = now - 25 * 3600
    os.utime(wh.snapshot_path, (day_ago, day_ago))
    assert snapshot.due(wh, quiet=True, now=now)  # past the interval, and the file was written since
    os.utime(wh.path, (day_ago - 60, day_ago - 60))
    assert not snapshot.due(wh, quiet=False, now=now)  # old, but nothing changed since it was published
    every_run = wh.model_copy(update={"snapshot_every_hours": 0.0})
    assert snapshot.due(every_run, quiet=False) and not snapshot.due(every_run, quiet=True)
    assert "published" in snapshot.age_line(wh) and "every 24 h" in snapshot.age_line(wh)


def test_sql_reads_the_snapshot_while_a_load_holds_the_file_and_says_how_old_it_is(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    settings = load_settings(config, env={})
    assert snapshot.publish_snapshot(settings.warehouse) is not None
    with holding(db, "rw"):
        code, out, err = _main(capsys, "sql", "--config", str(config), "select count(*) as n from articles")
    assert code == 0 and str(_ids(db).__len__()) in out
    assert "querying the last snapshot" in err and "published" in err and "s ago" in err


def test_newsflow_snapshot_publishes_now_and_status_shows_its_age(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    code, out, _err = _main(capsys, "status", "--config", str(config))
    assert code == 0 and "Snapshot: none yet" in out
    code, out, err = _main(capsys, "snapshot", "--config", str(config))
    assert code == 0, err
    snap = tmp_path / "wh.snapshot.duckdb"
    assert f"published {snap}" in out and _ids(snap) == _ids(db)
    first = snap.stat().st_ino
    assert _main(capsys, "snapshot", "--config", str(config))[0] == 0
    assert snap.stat().st_ino != first  # a new file renamed over the old one, never rewritten in place
    code, out, _err = _main(capsys, "status", "--config", str(config))
    assert code == 0 and f"Snapshot: {snap}, published" in out and "refreshed every 24 h" in out
    lake = _lake_config(tmp_path / "lake", "c.ducklake")
    code, out, _err = _main(capsys, "snapshot", "--config", str(lake))
    assert code == 0 and "a lake needs no snapshot" in out


@pytest.mark.parametrize("damage", ["cut", "overwritten"])
def test_a_damaged_snapshot_is_named_as_such_and_due_again(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
        damage: str) -> None:
    """A snapshot cut short or overwritten: status says so, reading it says how to publish it again (not to restore
    a backup), and the next run's end publishes it whatever its interval."""
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    wh = load_settings(config, env={}).warehouse
    assert snapshot.publish_snapshot(wh) is not None and not snapshot.due(wh, quiet=True)
    snap, size = wh.snapshot_path, wh.snapshot_path.stat().st_size
    with snap.open("r+b") as f:
        if damage == "cut":
            f.truncate(size // 2 + 1000)  # inside a block, as a copy cut short leaves it
        else:
            f.write(b"\x00" * 64)
    assert snapshot.due(wh, quiet=True)  # well inside its 24 h: published again at the next run's end
    code, out, _err = _main(capsys, "status", "--config", str(config))
    assert code == 0 and "DAMAGED (" in out and "`newsflow snapshot` publishes it again" in out
    code, _out, err = _main(capsys, "sql", "--config", str(config), "--snapshot", "select 1")
    assert code == 2 and err.count("\n") == 1 and "the snapshot is damaged" in err
    assert "`newsflow snapshot`" in err and "backup" not in err
    assert _main(capsys, "snapshot", "--config", str(config))[0] == 0
    assert not snapshot.damaged(wh) and _ids(snap) == _ids(db)


# ---------------------------------------------------------------- backup while runs go on

def test_a_backup_waits_for_a_run_inside_its_load_and_copies_what_it_committed(
        demo_server: LocalServer, demo_settings: Settings, prefect_harness: None, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A real `newsflow ingest` is held inside the transaction of its second load (the writer's lock held). A
    backup that cannot wait is refused; one that waits gets the file once the run is gone, with exactly what
    the run committed; restored into a fresh machine folder, it holds the same articles."""
    from prefect.settings import PREFECT_API_URL

    wh = demo_settings.warehouse
    ready = tmp_path / "paused"
    env = {**os.environ, **FAST_ENV, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "NEWSFLOW_PAUSE_AT": f"load@2:{ready}"}
    proc = subprocess.Popen([NEWSFLOW, "ingest", "--config", str(demo_settings.config_path), "--warehouse",
                             str(wh.path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    done: dict[str, Any] = {}
    try:
        _wait_for(ready.exists, proc, "the second load")
        with pytest.raises(database.WarehouseLocked):
            backup.backup(demo_settings, tmp_path / "refused", wait=0)
        assert not (tmp_path / "refused").exists()
        waiting = threading.Thread(target=lambda: done.update(m=backup.backup(demo_settings, tmp_path / "b",
                                                                               wait=120)))
        waiting.start()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    waiting.join(180)
    assert not waiting.is_alive() and "m" in done
    manifest = done["m"]
    committed = _ids(wh.path)
    assert manifest.articles == len(committed) and manifest.kind == "duckdb"
    listed = json.loads((tmp_path / "b" / backup.MANIFEST).read_text())
    assert {f["role"] for f in listed["files"]} >= {"warehouse"}
    assert not (tmp_path / "b" / "warehouse.duckdb.wal").exists()  # a WAL the run left is folded into the copy
    assert all(len(f["sha256"]) == 64 for f in listed["files"])

    fresh = _config(tmp_path / "machine2")
    code, _out, err = _main(capsys, "restore", "--config", str(fresh), "--from", str(tmp_path / "b"))
    assert code == 0, err
    assert _ids(tmp_path / "machine2" / "wh.duckdb") == committed
    assert (tmp_path / "machine2" / "wh.snapshot.duckdb").exists()


def test_a_load_meeting_a_backup_stages_its_batch_and_loses_nothing(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The backup holds the file read-only while it copies (here: held at that point until killed). A load
    meanwhile waits its lock wait, stages its batch, and the next load takes it; a killed backup leaves no
    backup folder."""
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    settings = load_settings(config, env={})
    ready = tmp_path / "copying"
    proc = subprocess.Popen([NEWSFLOW, "backup", "--config", str(config), "--out", str(tmp_path / "b")],
                            env={**os.environ, "NEWSFLOW_PAUSE_AT": f"backup-copy:{ready}"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(ready.exists, proc, "the backup's copy")
        batch = staging.Batch("20000101T000000-bbbbbbbb-0001", "run-b")
        batch.add("runs", {"run_id": "run-b", "flow": "ingest", "started_at": datetime(2000, 1, 1, tzinfo=UTC),
                           "status": "completed"})
        assert store.store(settings, batch) is None  # the backup holds the file: staged, not lost
        assert len(staging.pending(settings.warehouse.staging_dir)) == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "b").exists()
    loaded, left = store.load_pending(settings, None, "run-c")
    assert (loaded, left) == (1, 0)
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select status from runs where run_id = 'run-b'").fetchall() == [("completed",)]


def test_a_backup_holds_the_raw_archive_and_staged_batches_and_not_the_caches(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "src" / "wh.duckdb")
    config = _config(tmp_path / "src", db)
    settings = load_settings(config, env={})
    raw = settings.warehouse.raw_dir / "2026-11-30"
    raw.mkdir(parents=True)
    (raw / "b1.parquet").write_bytes(b"PAR1 not really, but a file the backup must carry PAR1")
    (db.with_name(db.name + ".keys")).mkdir()
    (db.with_name(db.name + ".keys") / "manifest.json").write_text("{}")
    batch = staging.Batch("20000101T000000-cccccccc-0001", "run-s")
    batch.add("runs", {"run_id": "run-s", "flow": "ingest", "started_at": datetime(2000, 1, 1, tzinfo=UTC),
                       "status": "staged"})
    staging.write(batch, settings.warehouse.staging_dir)
    aside = staging.write(staging.Batch("20000101T000000-dddddddd-0001", "run-q"), settings.warehouse.staging_dir)
    staging.quarantine(aside)  # rows no warehouse holds yet, kept until someone mends them: backed up too
    code, out, err = _main(capsys, "backup", "--config", str(config), "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert "backup of" in out and "articles" in out
    roles = {f["path"]: f["role"] for f in json.loads((tmp_path / "b" / backup.MANIFEST).read_text())["files"]}
    assert roles["warehouse.duckdb"] == "warehouse"
    assert roles["raw/2026-11-30/b1.parquet"] == "raw"
    assert any(r == "staging" and p.startswith("staging/20000101T000000-cccccccc-0001/") for p, r in roles.items())
    assert not any("keys" in p or "snapshot" in p or "search" in p for p in roles)
    assert not (tmp_path / "b" / "warehouse.duckdb.wal").exists()

    fresh = _config(tmp_path / "new")
    assert _main(capsys, "restore", "--config", str(fresh), "--from", str(tmp_path / "b"))[0] == 0
    assert (tmp_path / "new" / "wh.raw" / "2026-11-30" / "b1.parquet").read_bytes() == (raw / "b1.parquet").read_bytes()
    assert [p.name for p in staging.pending(tmp_path / "new" / "wh.staging")] == [batch.batch_id]
    assert [p.name for p in staging.quarantined(tmp_path / "new" / "wh.staging")] == [aside.name]


# ---------------------------------------------------------------- restore

def test_restore_refuses_a_live_warehouse_without_force_and_replaces_it_with_force(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    assert _main(capsys, "backup", "--config", str(config), "--out", str(tmp_path / "b"))[0] == 0
    before = _ids(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("delete from article_entities where article_id = ?", [before[0][0]])
        conn.execute("delete from articles where article_id = ?", [before[0][0]])
    keys = db.with_name(db.name + ".keys")
    keys.mkdir()
    changed = _ids(db)

    code, out, err = _main(capsys, "restore", "--config", str(config), "--from", str(tmp_path / "b"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "a warehouse is there" in err and "--force" in err
    assert _ids(db) == changed

    with runlock.run_lock(db) as mine:  # a run holds it: refused even with --force
        assert mine
        code, _out, err = _main(capsys, "restore", "--config", str(config), "--from", str(tmp_path / "b"), "--force")
    assert code == 2 and "a run holds" in err and _ids(db) == changed

    with holding(db, "ro"):  # someone has the file open: refused, nothing replaced under them
        code, _out, err = _main(capsys, "restore", "--config", str(config), "--from", str(tmp_path / "b"), "--force")
    assert code == 2 and "held open by another process" in err and _ids(db) == changed

    code, out, err = _main(capsys, "restore", "--config", str(config), "--from", str(tmp_path / "b"), "--force")
    assert code == 0, err
    assert _ids(db) == before
    assert not keys.exists()  # the lookup cache of the warehouse before is gone; the next load reads the tables
    assert _ids(tmp_path / "wh.snapshot.duckdb") == before
    assert not list(tmp_path.glob("*.tmp"))


def test_a_damaged_backup_is_refused_and_nothing_is_written(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "src" / "wh.duckdb")
    assert _main(capsys, "backup", "--config", str(_config(tmp_path / "src", db)), "--out",
                 str(tmp_path / "b"))[0] == 0
    copy = tmp_path / "b" / "warehouse.duckdb"
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    fresh = _config(tmp_path / "new")
    code, _out, err = _main(capsys, "restore", "--config", str(fresh), "--from", str(tmp_path / "b"))
    assert code == 2 and err.count("\n") == 1
    assert "warehouse.duckdb does not match its checksum; the backup is damaged, nothing was restored" in err
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["newsflow.toml"]

    code, _out, err = _main(capsys, "restore", "--config", str(fresh), "--from", str(tmp_path / "src"))
    assert code == 2 and "not a newsflow backup (no manifest.json)" in err


def _swap_warehouse_file(backup_dir: Path, make: Callable[[Path], None]) -> None:
    """Replace the backup's warehouse file by what `make` writes, and its manifest entry with the new size and
    hash, as whoever rewrites a backup can."""
    copy = backup_dir / "warehouse.duckdb"
    copy.unlink()
    make(copy)
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    for item in manifest["files"]:
        if item["path"] == "warehouse.duckdb":
            item["size"], item["sha256"] = copy.stat().st_size, backup.sha256(copy)
    (backup_dir / "manifest.json").write_text(json.dumps(manifest))


def _cut(src: Path) -> Callable[[Path], None]:
    return lambda dst: dst.write_bytes(src.read_bytes()[:1_000_000])


def _foreign(dst: Path) -> None:
    with duckdb.connect(str(dst)) as conn:
        conn.execute("create table mine (x integer)")


@pytest.mark.parametrize("make", ["cut", "foreign"])
def test_restore_force_refuses_a_warehouse_file_its_manifest_was_rewritten_for(
        make: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A backup whose warehouse file is cut short or another DuckDB file, with a manifest rewritten to match: the
    checksums pass, and `--force` replaced the live warehouse with it (deleting its lookup cache and search index)
    before failing. The file is judged first now: refused, the live warehouse untouched."""
    db = copy_demo(tmp_path_factory, tmp_path / "wh.duckdb")
    config = _config(tmp_path, db)
    assert _main(capsys, "backup", "--config", str(config), "--out", str(tmp_path / "b"))[0] == 0
    _swap_warehouse_file(tmp_path / "b", _cut(db) if make == "cut" else _foreign)
    before = _ids(db)
    code, _out, err = _main(capsys, "restore", "--config", str(config), "--from", str(tmp_path / "b"), "--force")
    assert code == 2 and err.count("\n") == 1, err
    assert "is not a newsflow warehouse" in err and "nothing restored" in err
    assert _ids(db) == before


# ---------------------------------------------------------------- DuckLake

def _lake_config(root: Path, catalog: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    prefix = "sqlite:" if catalog.endswith(".sqlite") else ""
    path = root / "newsflow.toml"
    path.write_text(f'[warehouse]\nbackend = "ducklake"\ncatalog = "{prefix}{root / catalog}"\n'
                    f'path = "{root / "wh.duckdb"}"\nstaging_dir = "{root / "staging"}"\n'
                    f'[pipeline]\nseeds_dir = "{root / "seeds"}"\n')
    return path


@pytest.mark.parametrize("catalog", ["catalog.ducklake", "catalog.sqlite"])
def test_a_lake_backup_restores_into_a_fresh_folder(catalog: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = load_settings(_lake_config(tmp_path / "src", catalog), env={})
    assert src.warehouse.catalog == _lake(tmp_path / "src", catalog).catalog
    with database.connect(src.warehouse) as conn:
        database.migrate(conn)
        writer.load_batch(conn, _batch(), DedupSettings())
        urls = conn.execute("select url from articles order by url").fetchall()
    assert len(urls) == 3
    code, _out, err = _main(capsys, "backup", "--config", str(src.config_path), "--out", str(tmp_path / "b"))
    assert code == 0, err
    listed = json.loads((tmp_path / "b" / backup.MANIFEST).read_text())
    assert listed["kind"] == "ducklake" and listed["articles"] == 3
    assert any(f["role"] == "data" and f["path"].endswith(".parquet") for f in listed["files"])

    fresh = load_settings(_lake_config(tmp_path / "new", catalog), env={})
    code, _out, err = _main(capsys, "restore", "--config", str(fresh.config_path), "--from", str(tmp_path / "b"))
    assert code == 0, err
    with database.connect(fresh.warehouse, read_only=True) as conn:
        assert conn.execute("select url from articles order by url").fetchall() == urls
    # The source lake stays whole and a second restore over the new one needs --force.
    code, _out, err = _main(capsys, "restore", "--config", str(fresh.config_path), "--from", str(tmp_path / "b"))
    assert code == 2 and "--force" in err
    assert _main(capsys, "restore", "--config", str(fresh.config_path), "--from", str(tmp_path / "b"),
                 "--force")[0] == 0
    with database.connect(fresh.warehouse, read_only=True) as conn:
        assert conn.execute("select url from articles order by url").fetchall() == urls


def test_a_duckdb_backup_is_not_restored_into_a_lake(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_demo(tmp_path_factory, tmp_path / "src" / "wh.duckdb")
    assert _main(capsys, "backup", "--config", str(_config(tmp_path / "src", db)), "--out",
                 str(tmp_path / "b"))[0] == 0
    code, _out, err = _main(capsys, "restore", "--config", str(_lake_config(tmp_path / "lake", "c.ducklake")),
                            "--from", str(tmp_path / "b"))
    assert code == 2 and "the backup is of a duckdb warehouse and the config's is ducklake" in err
