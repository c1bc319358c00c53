"""Settings: the shipped config, overrides, and one-line errors naming the key.

Covers: flows.core.settings, flows.core.sections
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flows.core.settings import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError, Settings, load_settings


def test_shipped_config_loads_with_real_feeds() -> None:
    s = load_settings(env={})
    assert len(s.feeds) >= 8
    assert all(f.url.startswith("https://") for f in s.feeds)
    assert s.warehouse.path == PROJECT_ROOT / "warehouse" / "newsflow.duckdb"
    assert s.fetch.allow_private_networks is False


def test_shipped_config_states_the_real_defaults() -> None:
    """Every value written in config/newsflow.toml equals the built-in default, so the comments stay true."""
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    defaults = Settings()
    for section, values in data.items():
        if section == "feeds":
            continue
        model = getattr(defaults, section)
        for key, value in values.items():
            current = getattr(model, key)
            current = str(current) if isinstance(current, Path) else current
            current = list(current) if isinstance(current, tuple) else current
            assert current == value, f"[{section}] {key}"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "expected"), [
    ("[fetch]\nread_timout = 3\n", "fetch.read_timout: unknown key"),
    ("[fetch]\nread_timeout = -1\n", "fetch.read_timeout: Input should be greater than 0"),
    ("[dedup]\nnum_perm = 96\nbands = 7\n", "dedup.bands: Value error, must divide num_perm (96)"),
    ('[[feeds]]\nname = "a"\n', "feeds[0].url: Field required"),
    ('[[feeds]]\nname = "a"\nurl = "x"\n[[feeds]]\nname = "a"\nurl = "y"\n', "duplicate feed name 'a'"),
    ("[fetch\n", "invalid TOML"),
    # Passed the config, then failed the first run with a traceback: asked of DuckDB now.
    ('[warehouse]\nstorage_compatibility = "v0.0.1"\n',
     "warehouse.storage_compatibility: Value error, Invalid Input Error: The version string 'v0.0.1' is not a known"),
    ('[warehouse]\nstorage_compatibility = "v1\' x"\n', "is not a DuckDB storage version"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_a_config_that_is_no_regular_file_or_too_large_is_one_line(tmp_path: Path) -> None:
    """`--config /dev/zero` was read until the machine ran out of memory (22 GB), a FIFO waited for a writer for
    ever: only a regular file of at most 1 MiB is read."""
    import os

    os.mkfifo(tmp_path / "fifo.toml")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    cases = {Path("/dev/zero"): "not a regular file", tmp_path / "fifo.toml": "not a regular file",
             tmp_path: "is a folder", big: "larger than 1,048,576 bytes", tmp_path / "none.toml": "not found"}
    for path, why in cases.items():
        with pytest.raises(ConfigError, match=why) as caught:
            load_settings(path, env={})
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_environment_and_flags_override(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[fetch]\nread_timeout = 3\n")
    s = load_settings(env={"NEWSFLOW_CONFIG": str(cfg), "NEWSFLOW_FETCH__READ_TIMEOUT": "7",
                           "NEWSFLOW_FETCH__USER_AGENT": "ua test", "NEWSFLOW_WAREHOUSE": str(tmp_path / "x.duckdb")})
    assert s.fetch.read_timeout == 7
    assert s.fetch.user_agent == "ua test"
    assert s.warehouse.path == tmp_path / "x.duckdb"
    assert s.warehouse.staging_dir == tmp_path / "x.staging"
    flag = load_settings(cfg, warehouse=tmp_path / "y.duckdb", env={"NEWSFLOW_WAREHOUSE": str(tmp_path / "x.duckdb")})
    assert flag.warehouse.path == tmp_path / "y.duckdb"


def test_cli_refuses_a_bad_config_before_running(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[fetch]\nbogus = 1\n")
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"newsflow: {cfg}: fetch.bogus: unknown key"]
    assert not (tmp_path / "wh").exists()
