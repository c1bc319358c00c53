"""The offline demo: serve the bundled snapshot from 127.0.0.1 and ingest it end to end."""

from __future__ import annotations

import tomllib
from pathlib import Path

from flows.core.settings import PROJECT_ROOT
from flows.ops.localserver import LocalServer

DEMO_DATA = Path(__file__).parent / "demo_data"
DEMO_WAREHOUSE = PROJECT_ROOT / "warehouse" / "demo.duckdb"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def demo_config(server: LocalServer, warehouse: Path, workdir: Path) -> Path:
    """Write a config for the snapshot served by `server`: the demo feeds, private networks allowed."""
    feeds = tomllib.loads(server.render((DEMO_DATA / "feeds.toml").read_bytes(), ".toml").decode())["feeds"]
    lines = [
        "# Written by `newsflow demo` for one run against the local snapshot.",
        "[warehouse]",
        f"path = {_toml_value(str(warehouse))}",
        f"staging_dir = {_toml_value(str(warehouse.with_name(warehouse.stem + '.staging')))}",
        f"snapshot_path = {_toml_value(str(warehouse.with_name(warehouse.stem + '.snapshot.duckdb')))}",
        "[fetch]",
        "allow_private_networks = true",
        "min_host_delay = 0",
        "connect_timeout = 5",
        "read_timeout = 10",
        "[pipeline]",
        f"seeds_dir = {_toml_value(str(PROJECT_ROOT / 'seeds'))}",
    ]
    for feed in feeds:
        lines += ["[[feeds]]"] + [f"{k} = {_toml_value(v)}" for k, v in feed.items()]
    path = workdir / "newsflow-demo.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def marker(warehouse: Path) -> Path:
    """The sidecar file that says `newsflow demo` made this warehouse, so `--fresh` may delete it."""
    return warehouse.with_name(warehouse.name + ".demo")


def _derived(warehouse: Path) -> list[Path]:
    """What a demo run writes beside its warehouse (paths as in `demo_config`)."""
    stem = warehouse.with_name(warehouse.stem)
    return [warehouse.with_name(warehouse.name + ".wal"), warehouse.with_name(warehouse.name + ".runlock"),
            warehouse.with_name(warehouse.name + ".keys"),
            Path(f"{stem}.staging"), Path(f"{stem}.snapshot.duckdb"), Path(f"{stem}.snapshot.duckdb.wal"),
            Path(f"{stem}.raw")]


def check_target(warehouse: Path, *, fresh: bool) -> None:
    """Refuse (WarehouseError) a warehouse the demo must not write or, with `fresh`, delete: the demo writes
    only into a missing file or a newsflow warehouse holding nothing but loopback and seed data, and deletes
    only such a warehouse that also has its marker."""
    from flows.warehouse import database as wh

    wh.check_file(warehouse, create=True, write=True)
    if not warehouse.exists():
        return
    if fresh and not marker(warehouse).exists():
        raise wh.WarehouseError(f"{warehouse}: not made by `newsflow demo` (no {marker(warehouse).name} beside "
                                "it), so --fresh will not delete it; delete it yourself if you mean to")
    try:
        probe = wh.WarehouseSettings(path=warehouse)
        with wh.connect(probe, read_only=True, wait=probe.waits.read) as conn:
            tables = {r[0] for r in conn.execute(wh.query("user_tables")).fetchall()}
            foreign = conn.execute(wh.query("demo_foreign_rows")).fetchone()[0] if "articles" in tables else 0
    except wh.WarehouseLocked:
        raise wh.WarehouseError(f"{warehouse} is in use by another process; close it and try again") from None
    if foreign:
        raise wh.WarehouseError(f"{warehouse}: holds {foreign} feeds or articles from beyond 127.0.0.1, so it is "
                                "not a demo warehouse; the demo will not write to or delete it")


def mark(warehouse: Path) -> bool:
    """Mark a warehouse the demo's run made (or wrote): only once it is a newsflow warehouse, so a run that failed
    before creating it leaves nothing that `--fresh` would take for its own. False when not marked."""
    from flows.warehouse import identity

    try:
        made = identity.classify(warehouse).kind == "newsflow"
    except identity.BusyError:
        made = False
    if made:
        marker(warehouse).write_text("Made by `newsflow demo`: `newsflow demo --fresh` may delete this "
                                     "warehouse.\n")
    return made


def remove(warehouse: Path) -> None:
    """Delete a demo warehouse and everything its runs wrote beside it (call `check_target` first). Only with its
    marker: beside a warehouse that is not there, `<stem>.raw/`, `<stem>.staging/` or `<stem>.snapshot.duckdb` are
    someone's (`--fresh` on a new path deleted a user's `photos.raw/` beside a missing `photos.duckdb`)."""
    import shutil

    if not marker(warehouse).exists():
        return
    for path in [warehouse, *_derived(warehouse), marker(warehouse)]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
