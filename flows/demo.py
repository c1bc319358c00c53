"""The offline demo: serve the bundled snapshot from 127.0.0.1 and ingest it end to end."""

from __future__ import annotations

import tomllib
from pathlib import Path

from flows.localserver import LocalServer
from flows.settings import PROJECT_ROOT

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
