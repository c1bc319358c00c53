"""Where the third-party evaluation corpora live, read by path and never copied into the repository."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.core.settings import PROJECT_ROOT


def corpora_root() -> Path:
    """../shared/corpora next to the repository, or NEWSFLOW_CORPORA."""
    return Path(os.environ.get("NEWSFLOW_CORPORA") or PROJECT_ROOT.parent / "shared" / "corpora")


@dataclass(frozen=True)
class Page:
    id: str
    url: str
    lang: str
    title: str
    body: str  # the expected article text
    html: bytes


def fundus_pages(*, lang: str | None = None) -> Iterator[Page]:
    """The fundus extraction pages with their expected bodies (optionally one language)."""
    root = corpora_root() / "extraction" / "fundus"
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise SystemExit(f"corpus not found: {manifest} (set NEWSFLOW_CORPORA)")
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        if lang and row.get("html_lang") != lang:
            continue
        yield Page(row["id"], row["url"], row.get("html_lang") or "", row.get("title") or "", row["body"],
                   gzip.decompress((root / row["html_path"]).read_bytes()))
