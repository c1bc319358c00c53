"""Settings: one frozen object built from config/newsflow.toml, environment and CLI flags."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from flows.core.errors import ConfigError
from flows.core.files import FileTooLargeError, NotRegularFileError, read_bounded
from flows.core.sections import (
    DedupSettings,
    EntitySettings,
    ExtractSettings,
    FetchSettings,
    HealthSettings,
    MaintenanceSettings,
    SavedSearch,
    Section,
    StoriesSettings,
    language_key,
    time_zone,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "newsflow.toml"
# The most shards a feed list is split into, for `ingest --shard K/N` and `fanout --shards N` alike (one bound, so
# a shard a fan-out cannot start is refused by ingest too): more would be mostly empty runs, each a worker slot.
MAX_SHARDS = 256




class FeedConfig(Section):
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    tags: tuple[str, ...] = ()
    enabled: bool = True
    language: str | None = None  # the feed's language, used for pages that declare none

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else language_key(v)

    @field_validator("url")
    @classmethod
    def _url_parses(cls, v: str) -> str:
        # A URL Python cannot split (`http://[::1:8765/x`) is refused here, naming feeds[i].url, rather than
        # met by the run. Any scheme passes: an unsupported one is that feed's failure (bad_scheme), not the config's.
        # The URL itself stays out of the message: it may carry a password.
        from urllib.parse import urlsplit

        try:
            urlsplit(v.strip()).port  # noqa: B018 - raises on a bad bracket or port
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        return v


@dataclass(frozen=True)
class LockWaits:
    """How long each kind of connection waits, in seconds, while another process holds the warehouse (DuckDB
    allows one writing process). A run's start and its loads wait the full `lock_wait_seconds` (`load`): they must
    get through, and a batch stays staged when they cannot. The others give up sooner and have a fallback."""

    load: float  # a run's start, its loads, the loader: the full wait
    hints: float  # the reads that steer a run (feed states, known URLs, stored seeds), marking dead runs
    checks: float  # the warehouse checks at the end of a run
    check_command: float  # `newsflow check`: read-write but brief, so a load meeting it only waits a moment
    precheck: float  # the NER pre-check of a batch (a locked warehouse: every document is tagged)
    backlog: float  # a batch behind one that already found the lock held: the next run loads them in order
    report: float  # the run's report and alerts reads, best effort (fixed: not capped by lock_wait_seconds)
    read: float  # people's reads and probes: sql, status, exports, the report page, the demo (fixed)
    snapshot: float  # the published snapshot: nothing holds it but a publish, briefly


class WarehouseSettings(Section):
    # "duckdb": one file at `path` (the default). "ducklake": tables as Parquet under `data_path`, listed by the
    # `catalog` database, for readers and writers on several machines (docs/scale.md).
    backend: Literal["duckdb", "ducklake"] = "duckdb"
    # ducklake: a local DuckDB catalog file, `sqlite:<file>`, or `postgres:<libpq connection string or URI>`.
    catalog: str = ""
    # ducklake: the folder (local or shared) of the lake's Parquet files; default: `<catalog>.files/` beside a
    # local catalog file.
    data_path: str = ""
    path: Path = Path("warehouse/newsflow.duckdb")
    # Files written with an older storage format open in older DuckDB CLIs and BI tools.
    storage_compatibility: str = "v1.4.0"
    staging_dir: Path = Path("warehouse/staging")
    lock_wait_seconds: float = Field(default=30.0, ge=0)
    snapshot: bool = True
    snapshot_path: Path = Path("warehouse/snapshots/newsflow.duckdb")
    # The snapshot is copied again when it is this old and the warehouse changed since (flows/warehouse/snapshot.py):
    # by a run, `newsflow snapshot` or the maintenance flow. 0: after every run that brings something new.
    snapshot_every_hours: float = Field(default=24.0, ge=0)
    keep_raw_html: bool = True
    raw_html_retention_days: int = Field(default=90, ge=0)

    @field_validator("storage_compatibility")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        """A storage version this DuckDB writes: an unknown one passed the config and failed the first run with a
        traceback. Asked of DuckDB itself (an in-memory attach), so it stays right as DuckDB adds versions."""
        import duckdb

        if not re.fullmatch(r"latest|v\d+\.\d+\.\d+", value):
            raise ValueError(f"{value!r} is not a DuckDB storage version (like 'v1.4.0', or 'latest')")
        try:
            with duckdb.connect() as probe:  # `value` matched the pattern above: no quote can reach the SQL
                probe.execute(f"attach ':memory:' as probe (storage_version '{value}')")
        except duckdb.Error as exc:
            raise ValueError(str(exc).split("valid options are:")[0].strip().rstrip(",") +
                             " (see DuckDB's storage versions)") from None
        return value

    @property
    def raw_dir(self) -> Path:
        """Raw-HTML Parquet archives, beside the warehouse file (kept out of it so its checkpoints stay short):
        <dir>/<stem>.raw/<YYYY-MM-DD>/<batch_id>.parquet. Derived from the resolved `path`, so a --warehouse
        override moves it along with the file."""
        return self.path.parent / f"{self.path.stem}.raw"

    @property
    def waits(self) -> LockWaits:
        full = self.lock_wait_seconds
        return LockWaits(load=full, hints=min(5.0, full), checks=min(5.0, full), check_command=min(10.0, full),
                         precheck=min(2.0, full), backlog=min(2.0, full), report=2.0, read=3.0, snapshot=0.0)

    @property
    def search_path(self) -> Path:
        """The full-text search index (flows/warehouse/search_index.py), a side file beside the warehouse file (a
        lake's: beside its local catalog file): its head <dir>/<stem>.search.duckdb, its segments in
        <dir>/<stem>.search-segments/.
        Derived from the resolved paths, so a --warehouse override moves it along with the file."""
        local = self.catalog.removeprefix("sqlite:")
        anchor = Path(local) if self.is_lake and local and not local.startswith(("postgres:", "postgresql:")) \
            else self.path
        return anchor.parent / f"{anchor.stem}.search.duckdb"

    @property
    def search_segments_dir(self) -> Path:
        """The folder of the search index's segment files, beside its head (flows/warehouse/search_index.py)."""
        base = self.search_path
        return base.with_name(base.name.removesuffix(".search.duckdb") + ".search-segments")

    @property
    def is_lake(self) -> bool:
        return self.backend == "ducklake"

    @property
    def lake_data_path(self) -> str:
        """The lake's data folder, ending in '/' as DuckLake expects."""
        path = self.data_path or f"{self.catalog.removeprefix('sqlite:')}.files"
        return path if path.endswith("/") else path + "/"

    @model_validator(mode="after")
    def _lake_needs_catalog(self) -> WarehouseSettings:
        if self.backend == "ducklake" and not self.catalog:
            raise ValueError('backend = "ducklake" needs `catalog` (a local catalog file, sqlite:<file> or '
                             "postgres:<connection string>)")
        if self.backend == "ducklake" and self.catalog.startswith(("postgres:", "postgresql:")) \
                and not self.data_path:
            raise ValueError("a PostgreSQL catalog needs `data_path` (the folder of the lake's files)")
        return self


class PipelineSettings(Section):
    workers: int = Field(default=0, ge=0)  # 0 = one per CPU core
    batch_size: int = Field(default=128, ge=1)
    seeds_dir: Path = Path("seeds")


class ScheduleSettings(Section):
    cron: str = "*/30 * * * *"
    timezone: str = "UTC"

    # The cron is checked the way `serve` meets it by flows/ops/schedule.py (Prefect's own check; settings stay
    # Prefect-free), called by every command after loading the settings.

    _timezone = field_validator("timezone")(time_zone)


class ReportSettings(Section):
    html_path: str = ""  # the HTML report `ingest` rewrites after each run; empty = off

    def html_file(self) -> Path | None:
        """The report page to write, relative paths under the project root; None when off."""
        return _resolve(Path(self.html_path), PROJECT_ROOT) if self.html_path.strip() else None


class Settings(Section):
    warehouse: WarehouseSettings = WarehouseSettings()
    fetch: FetchSettings = FetchSettings()
    health: HealthSettings = HealthSettings()
    extract: ExtractSettings = ExtractSettings()
    dedup: DedupSettings = DedupSettings()
    entities: EntitySettings = EntitySettings()
    stories: StoriesSettings = StoriesSettings()
    pipeline: PipelineSettings = PipelineSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    report: ReportSettings = ReportSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    feeds: tuple[FeedConfig, ...] = ()
    searches: tuple[SavedSearch, ...] = ()  # [[searches]]: saved searches, matched after each ingest
    config_path: Path | None = None

    @field_validator("feeds")
    @classmethod
    def _unique_names(cls, feeds: tuple[FeedConfig, ...]) -> tuple[FeedConfig, ...]:
        seen: set[str] = set()
        for feed in feeds:
            if feed.name in seen:
                raise ValueError(f"duplicate feed name {feed.name!r}")
            seen.add(feed.name)
        return feeds

    @field_validator("searches")
    @classmethod
    def _unique_searches(cls, searches: tuple[SavedSearch, ...]) -> tuple[SavedSearch, ...]:
        names = [s.name for s in searches]
        if len(set(names)) < len(names):
            raise ValueError(f"duplicate saved search name {next(n for n in names if names.count(n) > 1)!r}")
        return searches

    def worker_count(self) -> int:
        return self.pipeline.workers or os.cpu_count() or 1


def _describe(err: ValidationError, path: Path, env_names: dict[tuple[str, str], str]) -> str:
    first = err.errors()[0]
    parts: list[str] = []
    for loc in first["loc"]:
        if isinstance(loc, int) and parts:
            parts[-1] += f"[{loc}]"
        else:
            parts.append(str(loc))
    key = ".".join(parts) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    loc = tuple(str(x) for x in first["loc"][:2])
    source = (env_names.get(loc) or env_names.get((loc[0], ""))) if loc else None
    return f"{source}: {key}: {msg}" if source else f"{path}: {key}: {msg}"


def _env_name(section: str, key: str) -> str:
    return f"NEWSFLOW_{section.upper()}__{key.upper()}"


def _env_overrides(env: dict[str, str] | os._Environ[str]) -> dict[str, dict[str, Any]]:
    """NEWSFLOW_FETCH__READ_TIMEOUT=5 sets [fetch] read_timeout; values are read as TOML, else as text."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith("NEWSFLOW_") or "__" not in name:
            continue
        section, _, key = name[len("NEWSFLOW_"):].lower().partition("__")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):  # not a TOML value (or nested past any use): the text
            value = raw
        out.setdefault(section, {})[key] = value
    return out


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def _lake_paths(wh: WarehouseSettings) -> dict[str, str]:
    """A local catalog file and data folder resolved against the project root (URLs and PostgreSQL as given)."""
    out: dict[str, str] = {}
    if not wh.catalog.startswith(("postgres:", "postgresql:")):
        prefix = "sqlite:" if wh.catalog.startswith("sqlite:") else ""
        out["catalog"] = prefix + str(_resolve(Path(wh.catalog.removeprefix(prefix)), PROJECT_ROOT))
    if wh.data_path and "://" not in wh.data_path:
        out["data_path"] = str(_resolve(Path(wh.data_path), PROJECT_ROOT))
    return out


CONFIG_LIMIT = 1 << 20  # bytes: a config is settings and a feed list, never data


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's TOML; every way it cannot be read is a ConfigError naming the file (a FIFO waited for a
    writer for ever and /dev/zero was read until memory ran out: only a regular file of at most 1 MiB is read)."""
    try:
        return tomllib.loads(read_bounded(path, CONFIG_LIMIT).decode("utf-8"))
    except NotRegularFileError as exc:
        raise ConfigError(f"{path}: is a folder, not a config file" if exc.kind == "a folder" else
                          f"{path}: {exc.kind}; a config is a TOML file") from None
    except FileTooLargeError as exc:
        raise ConfigError(f"{path}: {exc}; a config is settings and a feed list") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None


def _check_places(wh: WarehouseSettings, path: Path) -> None:
    """Refuse, at load, a warehouse folder setting that names a file, naming the setting: found by the run, it
    was a bare errno after seconds."""
    folders = {"staging_dir": wh.staging_dir}
    if wh.is_lake and wh.data_path and "://" not in wh.data_path:
        folders["data_path"] = Path(wh.data_path)
    for key, folder in folders.items():
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{path}: warehouse.{key}: {folder} is a file, not a folder")


def load_settings(
    config: str | Path | None = None,
    *,
    warehouse: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Read the TOML file (flag, then NEWSFLOW_CONFIG, then the default) and apply overrides.

    Relative paths inside the file resolve against the project root, so the default config works from any
    working directory; a --warehouse flag or NEWSFLOW_WAREHOUSE resolves against the working directory.
    """
    env = os.environ if env is None else env
    path = Path(config or env.get("NEWSFLOW_CONFIG") or DEFAULT_CONFIG)
    data = _read_toml(path)
    from_env = _env_overrides(env)
    # A bad value from the environment is reported under its variable's name, not the file's.
    env_names = {(s, k): f"{_env_name(s, k)}={env[_env_name(s, k)]!r}" for s, v in from_env.items() for k in v}
    env_names |= {(s, ""): _env_name(s, next(iter(v))) for s, v in from_env.items()}
    for section, values in {**from_env, **(overrides or {})}.items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            where = env_names.get((section, "")) or f"overrides[{section!r}]"
            raise ConfigError(f"{where}: [{section}] is not a table of settings (feeds are [[feeds]] entries in "
                              f"{path}); it cannot be set this way")
        target.update(values)
    data["config_path"] = path.resolve()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env_names)) from None

    wh = settings.warehouse
    wh_path = Path(warehouse or env.get("NEWSFLOW_WAREHOUSE") or "")
    if str(wh_path) not in ("", "."):
        db = wh_path.resolve()
        # A warehouse given on the command line keeps its staging and snapshot beside it.
        wh = wh.model_copy(update={
            "path": db,
            "staging_dir": db.parent / f"{db.stem}.staging",
            "snapshot_path": db.parent / f"{db.stem}.snapshot.duckdb",
        })
    else:
        wh = wh.model_copy(update={
            "path": _resolve(wh.path, PROJECT_ROOT),
            "staging_dir": _resolve(wh.staging_dir, PROJECT_ROOT),
            "snapshot_path": _resolve(wh.snapshot_path, PROJECT_ROOT),
        })
    if wh.is_lake:
        wh = wh.model_copy(update=_lake_paths(wh))
    _check_places(wh, path)
    pipeline = settings.pipeline.model_copy(
        update={"seeds_dir": _resolve(settings.pipeline.seeds_dir, PROJECT_ROOT)}
    )
    settings = settings.model_copy(update={"warehouse": wh, "pipeline": pipeline})
    _check_report_page(settings, path)
    return settings


def _check_report_page(settings: Settings, config: Path) -> None:
    """Refuse a `[report] html_path` the report must not replace (the warehouse, a folder, someone's file)
    before any run starts; the page is checked again when it is written."""
    page = settings.report.html_file()
    if page is None:
        return
    from flows.core import owned  # the write guard: it knows every file the warehouse owns

    why = owned.problem(page, owned.of_settings(settings), "report")
    if why:
        raise ConfigError(f"{config}: [report] html_path: {why}")
