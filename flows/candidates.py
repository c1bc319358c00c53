"""The one implementation of dedup's candidate lookup and ranking, used by the loader, the pre-check (both
through `load.decide`) and `reprocess`, so a re-decision after a threshold change gives what a fresh ingest would.

Candidates come from the warehouse index (same text hash, a shared LSH bucket, or enough shared sampled
shingles); each is then verified exactly on its re-shingled text (flows/dedup.py `compare`).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from flows import dedup
from flows.dedup import Match, Signature
from flows.settings import DedupSettings
from flows.warehouse import query

_HASHES = pa.schema([("doc", pa.int64()), ("text_hash", pa.string())])
_BUCKETS = pa.schema([("doc", pa.int64()), ("band", pa.int64()), ("bucket", pa.int64())])
_SAMPLES = pa.schema([("doc", pa.int64()), ("hash", pa.int64()), ("n_samples", pa.int64())])


def stored_candidates(conn: duckdb.DuckDBPyConnection, sigs: dict[int, Signature], settings: DedupSettings
                      ) -> dict[int, list[int]]:
    """Stored articles worth verifying against each signature (keyed as given), ids sorted."""
    if not sigs:
        return {}
    conn.register("q_hashes", pa.Table.from_pylist(
        [{"doc": k, "text_hash": s.text_hash} for k, s in sigs.items()], schema=_HASHES))
    conn.register("q_buckets", pa.Table.from_pylist(
        [{"doc": k, "band": band, "bucket": int(b)} for k, s in sigs.items() for band, b in enumerate(s.buckets)],
        schema=_BUCKETS))
    conn.register("q_samples", pa.Table.from_pylist(
        [{"doc": k, "hash": int(h), "n_samples": int(s.samples.size)} for k, s in sigs.items() for h in s.samples],
        schema=_SAMPLES))
    found: dict[int, set[int]] = {}
    for k, article_id in conn.execute(
        query("dedup_candidates"), {"containment_threshold": settings.containment_threshold}
    ).fetchall():
        found.setdefault(k, set()).add(article_id)
    return {k: sorted(ids) for k, ids in found.items()}


def stored_signatures(conn: duckdb.DuckDBPyConnection, ids: Iterable[int], settings: DedupSettings
                      ) -> dict[int, Signature]:
    """Signatures of stored articles, re-computed from their text for exact verification."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {article_id: dedup.signature(text, settings)
            for article_id, text in conn.execute(query("candidate_texts"), {"ids": wanted}).fetchall()}


def rank(match: Match) -> tuple[bool, float]:
    return (match.method == "exact", match.similarity)


def best_match(sig: Signature, others: list[tuple[Signature, int]], settings: DedupSettings
               ) -> tuple[Match, int] | None:
    """The best verified match among (signature, id) pairs; of equally good ones, the lowest id, so the answer
    does not depend on the order the candidates came in."""
    best: tuple[Match, int] | None = None
    for other, other_id in sorted(others, key=lambda p: p[1]):
        match = dedup.compare(sig, other, settings)
        if match and (best is None or rank(match) > rank(best[0])):
            best = (match, other_id)
    return best
