"""The shared third-party corpora, read by path (never copied here): ../shared/corpora, or NEWSFLOW_CORPORA.

The same location rule as benchmarks/corpora.py, for tests (which do not import the benchmarks package).
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.core.settings import PROJECT_ROOT


def corpora_root() -> Path:
    return Path(os.environ.get("NEWSFLOW_CORPORA") or PROJECT_ROOT.parent / "shared" / "corpora")


def feed_files() -> list[Path]:
    """Every file of the feed corpus, MANIFEST.json included (it is one more thing a feed URL can serve)."""
    root = corpora_root() / "feeds"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def fundus_files() -> list[Path]:
    """The fundus news pages (gzipped HTML)."""
    root = corpora_root() / "extraction" / "fundus" / "test_data"
    return sorted(root.rglob("*.html.gz")) if root.is_dir() else []


def missing(what: str) -> str:
    return f"{what} not found under {corpora_root()} (set NEWSFLOW_CORPORA to the shared corpora folder)"
