"""The records a run stages and loads, each with one explicit Arrow schema.

A staged table is written with its schema, never with columns inferred from its first row: inference once made
a whole batch lose its entities because its first document was a copy that skipped NER. A value that is
missing is a typed null. `Document` is the one definition of an article on its way from extraction (or a
seed file) through staging to the loader and `reprocess`.

Staged batches carry `SCHEMA_VERSION`; batches staged by version 1 (no version file, columns inferred) still
load: `documents_from_table` fills what they lack with nulls. Version 3 (issue 22) adds the quality flags
(`access`, `is_teaser`, `is_consent_page`); a batch of an earlier version loads them as nulls (not assessed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 3
# The earliest publication date taken from a feed or a seed file: older ones are a source's placeholder ("0001-01-01",
# "1899-12-30"), not news, and the stories' window arithmetic has no room below year 1.
EARLIEST_PUBLISHED = datetime(1900, 1, 1, tzinfo=UTC)

_TS = pa.timestamp("us", tz="UTC")
_MENTION = pa.struct([("name", pa.string()), ("label", pa.string()), ("mentions", pa.int64())])


@dataclass
class Document:
    """One article: extracted from a page, kept from a feed summary, or read from a seed file."""

    url: str  # the key: the entry link's key (flows/core/urls.py normalise_url), or seed:<file>
    text: str
    body_source: str  # extracted | feed_summary | seed
    text_hash: str
    shingles: list[int]  # every shingle hash (as signed 64-bit), for exact verification
    buckets: list[int]  # LSH bucket per band
    samples: list[int]  # the sampled shingle hashes indexed for containment
    feed: str | None = None
    entry_guid: str | None = None
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    published_source: str | None = None  # feed | page | seed
    fetched_at: datetime | None = None
    language: str | None = None
    site_name: str | None = None
    canonical_url: str | None = None
    final_url: str | None = None
    http_status: int | None = None
    fallback_reason: str | None = None
    is_seed: bool = False
    seed_file: str | None = None
    seed_file_hash: str | None = None
    extractor: str | None = None
    extractor_version: str | None = None
    extractor_options: str | None = None  # JSON
    raw_html: bytes | None = None  # compressed page (flows/warehouse/rawcodec.py)
    # Filled by the tagging step: the entities, the pipeline that found them, or why the document was not tagged.
    mentions: list[dict[str, Any]] = field(default_factory=list)
    ner_pipeline: str | None = None
    ner_skip_reason: str | None = None
    link: str | None = None  # the entry's link as published (what was fetched); None for seeds
    # Quality flags (flows/text/quality.py); None when not assessed (batches staged before schema version 3).
    access: str | None = None  # free | paywalled
    is_teaser: bool | None = None
    is_consent_page: bool | None = None


DOCUMENT_SCHEMA = pa.schema([
    ("url", pa.string()), ("text", pa.string()), ("body_source", pa.string()), ("text_hash", pa.string()),
    ("shingles", pa.list_(pa.int64())), ("buckets", pa.list_(pa.int64())), ("samples", pa.list_(pa.int64())),
    ("feed", pa.string()), ("entry_guid", pa.string()), ("title", pa.string()), ("author", pa.string()),
    ("published_at", _TS), ("published_source", pa.string()), ("fetched_at", _TS), ("language", pa.string()),
    ("site_name", pa.string()), ("canonical_url", pa.string()), ("final_url", pa.string()),
    ("http_status", pa.int32()), ("fallback_reason", pa.string()), ("is_seed", pa.bool_()),
    ("seed_file", pa.string()), ("seed_file_hash", pa.string()), ("extractor", pa.string()),
    ("extractor_version", pa.string()), ("extractor_options", pa.string()), ("raw_html", pa.binary()),
    ("mentions", pa.list_(_MENTION)), ("ner_pipeline", pa.string()), ("ner_skip_reason", pa.string()),
    ("link", pa.string()), ("access", pa.string()), ("is_teaser", pa.bool_()), ("is_consent_page", pa.bool_()),
])

# The other staged tables: their rows are plain dicts named like the warehouse columns.
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema([
        ("run_id", pa.string()), ("flow", pa.string()), ("started_at", _TS), ("finished_at", _TS),
        ("status", pa.string()), ("parameters", pa.string()),
        *((name, pa.int64()) for name in (
            "feeds_total", "feeds_ok", "feeds_not_modified", "feeds_failed", "feeds_skipped", "entries_seen",
            "entries_new", "pages_fetched", "pages_failed", "articles_new", "fallbacks", "duplicates_exact",
            "duplicates_near", "entity_mentions", "batches_staged", "checks_failed")),
        ("message", pa.string()),
    ]),
    "feeds": pa.schema([
        ("feed", pa.string()), ("url", pa.string()), ("configured_url", pa.string()),
        ("tags", pa.list_(pa.string())), ("title", pa.string()), ("etag", pa.string()),
        ("last_modified", pa.string()), ("body_hash", pa.string()), ("last_fetch_at", _TS),
        ("last_success_at", _TS), ("last_status", pa.int32()), ("last_error", pa.string()),
        ("consecutive_failures", pa.int32()), ("next_fetch_at", _TS), ("disabled", pa.bool_()),
        ("disabled_reason", pa.string()), ("updated_at", _TS),
    ]),
    "feed_fetches": pa.schema([
        ("fetch_id", pa.string()), ("run_id", pa.string()), ("feed", pa.string()), ("url", pa.string()),
        ("final_url", pa.string()), ("http_status", pa.int32()), ("bytes", pa.int64()), ("duration_ms", pa.float64()),
        ("entries", pa.int32()), ("new_entries", pa.int32()), ("outcome", pa.string()), ("error", pa.string()),
        ("error_detail", pa.string()), ("fetched_at", _TS),
    ]),
    "entries": pa.schema([
        ("feed", pa.string()), ("guid", pa.string()), ("url", pa.string()), ("title", pa.string()),
        ("summary", pa.string()), ("published_at", _TS), ("author", pa.string()), ("first_seen_at", _TS),
        ("first_run_id", pa.string()), ("link", pa.string()),
    ]),
    "page_fetches": pa.schema([
        ("url", pa.string()), ("feed", pa.string()), ("run_id", pa.string()), ("http_status", pa.int32()),
        ("final_url", pa.string()), ("content_type", pa.string()), ("bytes", pa.int64()),
        ("duration_ms", pa.float64()), ("outcome", pa.string()), ("error", pa.string()),
        ("error_detail", pa.string()), ("fetched_at", _TS),
    ]),
}
_DOC_FIELDS = tuple(f.name for f in fields(Document))


def rows_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of a staged table as Arrow with the table's schema; a key the schema lacks is a bug, not a drop."""
    schema = TABLE_SCHEMAS[table]
    known = set(schema.names)
    for row in rows:
        extra = set(row) - known
        if extra:
            raise ValueError(f"staged table {table!r} has no column(s) {sorted(extra)}")
    return pa.Table.from_pylist(rows, schema=schema)


def documents_table(docs: list[Document]) -> pa.Table:
    # Not dataclasses.asdict: it deep-copies every shingle list.
    return pa.Table.from_pylist([{k: getattr(d, k) for k in _DOC_FIELDS} for d in docs], schema=DOCUMENT_SCHEMA)


def document_from_row(row: dict[str, Any]) -> Document:
    """A Document from a staged row of any version: columns it lacks become their default."""
    values = {k: row.get(k) for k in _DOC_FIELDS if k in row}
    if values.get("mentions") is None:
        values["mentions"] = []
    values["is_seed"] = bool(values.get("is_seed"))
    return Document(**values)


def documents_from_table(table: pa.Table) -> list[Document]:
    return [document_from_row(r) for r in table.to_pylist()]
