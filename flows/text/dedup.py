"""Exact and near-duplicate detection: text normalisation, word shingles, MinHash, LSH buckets, verification.

Pure functions. The warehouse stores each article's LSH buckets and a 1-in-`sample_mod` sample of its shingle
hashes; candidates found through either are verified here on the exact shingle sets.

- Jaccard catches copies with different boilerplate, headlines, edits or reordered paragraphs.
- Containment (share of the shorter text's shingles found in the longer) catches cuts, truncations and
  summaries, where Jaccard is low only because one text is much shorter.
- The summary criterion catches edited summaries, whose containment a changed word pulls under the threshold:
  every sentence of a short text must nearly be in the longer one (and in its lede when it has one sentence).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from flows.core.sections import DedupSettings

_WORD = re.compile(r"\w+")
# `<br>` tags left in a text (a feed's HTML kept as text) are line breaks, hence layout.
_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# A sentence of the layout-free text: up to terminal punctuation (Latin, CJK, Devanagari, Arabic, Urdu, Ethiopic),
# its closing quotes or brackets, then a space or the end (so "2.5" and "U.S.-led" do not end one); CJK stops need
# no space. The text after the last one is one item too.
_ENDS = ".!?…‽。！？।॥؟۔።"
_CLOSE = "\"'”’“‘»«›‹)\\]"
_SENTENCE = re.compile(rf"\S.*?(?:[{_ENDS}]+[{_CLOSE}]*(?= |$)|[。！？]|$)")
_TERMINAL = re.compile(rf"[{_ENDS}][{_CLOSE}]*$")
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_SEED_RNG = np.random.default_rng(0x6E657773)  # fixed: signatures must be comparable across runs


def _splitmix(x: np.ndarray) -> np.ndarray:
    """Avalanche mix of uint64 values (SplitMix64 finaliser); wraps modulo 2**64 by design."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_PERM_SEEDS = _SEED_RNG.integers(1, 2**63, size=512, dtype=np.uint64)


def normalize_text(text: str) -> str:
    """Lower-cased NFKC words joined by single spaces: what 'the same text' means for exact dedup. Layout (line
    breaks, `<br>` tags, spacing), case and punctuation are not part of it."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", _BR.sub(" ", text)).casefold()))


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()


def _word_hashes(words: list[str]) -> np.ndarray:
    cache: dict[str, int] = {}
    out = np.empty(len(words), dtype=np.uint64)
    for i, w in enumerate(words):
        h = cache.get(w)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            cache[w] = h
        out[i] = h
    return out


def shingle_sequence(text: str, size: int) -> np.ndarray:
    """64-bit hashes of the text's `size`-word shingles in text order (one shingle for shorter texts)."""
    words = normalize_text(text).split()
    if not words:
        return np.empty(0, dtype=np.uint64)
    wh = _word_hashes(words)
    n = max(1, len(words) - size + 1)
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(min(size, len(words))):
        acc = _splitmix(acc ^ wh[j : j + n])
    return acc


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the text's `size`-word shingles (one shingle for shorter texts)."""
    return np.unique(shingle_sequence(text, size))


def minhash(hashes: np.ndarray, num_perm: int) -> np.ndarray:
    """MinHash signature: for each of `num_perm` seeded hash functions, the minimum over the shingles."""
    if hashes.size == 0:
        return np.full(num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
    seeds = _PERM_SEEDS[:num_perm]
    sig = np.empty(num_perm, dtype=np.uint64)
    # Chunked so a very long text does not build a num_perm x n matrix in one go.
    step = 64
    for start in range(0, num_perm, step):
        block = _splitmix(hashes[None, :] ^ seeds[start : start + step, None])
        sig[start : start + step] = block.min(axis=1)
    return sig


def lsh_buckets(signature: np.ndarray, bands: int) -> np.ndarray:
    """One int64 bucket key per band: a hash of that band's rows of the signature."""
    rows = signature.reshape(bands, -1)
    acc = np.zeros(bands, dtype=np.uint64)
    for r in range(rows.shape[1]):
        acc = _splitmix(acc ^ rows[:, r])
    return acc.view(np.int64)


def sample(hashes: np.ndarray, mod: int) -> np.ndarray:
    """The shingle hashes kept for containment lookups: those divisible by `mod` (Broder's mod-p sketch)."""
    return hashes[hashes % np.uint64(mod) == 0].view(np.int64)


def lede_sample(sequence: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """The indexed sample: 1 in `sample_mod` of the shingles of the first `sample_lede_words` words (where feed
    summaries, ledes and most abridged copies come from), 1 in `sample_tail_mod` of the rest (0: none)."""
    head, tail = sequence[:settings.sample_lede_words], sequence[settings.sample_lede_words:]
    parts = [head[head % np.uint64(settings.sample_mod) == 0]]
    if settings.sample_tail_mod:
        parts.append(tail[tail % np.uint64(settings.sample_tail_mod) == 0])
    return np.unique(np.concatenate(parts)).view(np.int64)


@dataclass(frozen=True)
class Signature:
    text_hash: str
    shingles: np.ndarray  # sorted unique uint64
    buckets: np.ndarray  # int64, one per band
    samples: np.ndarray  # int64
    # The text, for the summary criterion (summary_parts), which reads it only for the rare pairs that reach it.
    text: str = ""

    @property
    def size(self) -> int:
        return int(self.shingles.size)


def layout_free(text: str) -> str:
    """The text with every line break, `<br>` tag and run of spaces made one space: where an outlet, a feed or a
    plain-text rendering breaks lines (hard-wrapped, one sentence per paragraph, a break every few words) is not
    part of the text."""
    return " ".join(_BR.sub(" ", text).split())


def sentences(text: str) -> list[str]:
    """The text's sentences, read from its layout-free form: each runs to terminal punctuation (and its closing
    quotes or brackets) followed by a space or the end; what follows the last one is the last item."""
    return list(_sentences(text))


def _sentences(text: str) -> Iterator[str]:
    return (m.group() for m in _SENTENCE.finditer(layout_free(text)))


def _is_signed(sentence: str, min_words: int) -> bool:
    """Whether a sentence is article text rather than an outlet's chrome: it ends a sentence, and has at least
    `min_words` words. Menus, share buttons, "Most read", bylines, headlines and link lists have no terminal
    punctuation (at the end of a text they are its unfinished last item, before a sentence they join it, which
    costs a few shingles); copyright lines, "Comments are closed." and datelines are short."""
    return _TERMINAL.search(sentence) is not None and len(_WORD.findall(sentence)) >= min_words


def signed_text(text: str, min_sentence_words: int) -> str:
    """What a signature is made of: the text's sentences that read as article text (`_is_signed`), whatever its
    layout. A text with none (a list, a headline, a text without terminal punctuation) is signed whole."""
    if min_sentence_words <= 0:
        return layout_free(text)
    kept = [s for s in sentences(text) if _is_signed(s, min_sentence_words)]
    return " ".join(kept) if kept else layout_free(text)


def summary_parts(text: str, settings: DedupSettings) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """What the summary criterion reads of a text: its signed sentences' shingles, and its lede's.

    Only texts of at most `summary_max_words` signed words get sentences, so a long text is never judged as a
    summary; short sentences and chrome are left out as they are from the signature.
    """
    limit = max(settings.summary_max_words, settings.summary_lede_words)
    head: list[str] = []
    n = 0
    # Only the opening sentences are read: past the lede and the summary length nothing here depends on the rest.
    for s in _sentences(text):
        if settings.min_sentence_words <= 0 or _is_signed(s, settings.min_sentence_words):
            head.append(s)
            n += len(_WORD.findall(s))
            if n > limit:
                break
    if not head:
        head = [layout_free(text)]
        n = len(_WORD.findall(head[0]))
    words = normalize_text(" ".join(head)).split()
    parts: tuple[np.ndarray, ...] = ()
    if n <= settings.summary_max_words:
        parts = tuple(shingle_hashes(s, settings.shingle_size) for s in head)
    lede = shingle_hashes(" ".join(words[:settings.summary_lede_words]), settings.shingle_size)
    return parts, lede


def signature(text: str, settings: DedupSettings) -> Signature:
    sequence = shingle_sequence(signed_text(text, settings.min_sentence_words), settings.shingle_size)
    hashes = np.unique(sequence)
    usable = hashes.size >= settings.min_shingles
    return Signature(
        text_hash=text_hash(text),
        shingles=hashes,
        buckets=lsh_buckets(minhash(hashes, settings.num_perm), settings.bands)
        if usable
        else np.empty(0, dtype=np.int64),
        samples=lede_sample(sequence, settings) if usable else np.empty(0, dtype=np.int64),
        text=text,
    )


@dataclass(frozen=True)
class Match:
    method: Literal["exact", "near"]
    criterion: Literal["text_hash", "jaccard", "containment", "summary"]
    similarity: float
    jaccard: float
    containment: float


EXACT = Match("exact", "text_hash", 1.0, 1.0, 1.0)


def compare(a: Signature, b: Signature, settings: DedupSettings) -> Match | None:
    """The verdict for one pair, or None when they are different stories.

    Containment of the shorter text at `containment_threshold` is enough (a summary or a cut inside the whole).
    Below it, Jaccard or a partial containment counts only with `min_shared_shingles` in common: a body's worth
    of text, more than an outlet's boilerplate, which is all two template pages of one site share. Failing
    those, a short text may still be a lightly edited summary of the other (`_summary_score`).
    """
    if a.text_hash == b.text_hash and a.size:
        return EXACT
    if min(a.size, b.size) < settings.min_shingles:
        return None
    shared = np.intersect1d(a.shingles, b.shingles, assume_unique=True).size
    jaccard = shared / (a.size + b.size - shared)
    containment = shared / min(a.size, b.size)
    if containment >= settings.containment_threshold:
        return Match("near", "containment", containment, jaccard, containment)
    if shared >= settings.min_shared_shingles:
        if jaccard >= settings.jaccard_threshold:
            return Match("near", "jaccard", jaccard, jaccard, containment)
        if containment >= settings.partial_containment_threshold:
            return Match("near", "containment", containment, jaccard, containment)
    return _summary(a, b, containment, jaccard, settings)


def _summary_score(short: Signature, long: Signature, settings: DedupSettings) -> float | None:
    """The lowest sentence containment of `short` in `long` when `short` reads as a summary of it, else None.

    Every sentence must be nearly in the longer text (so a text that quotes it, or an outlet's template page
    sharing its boilerplate lines, is not: their own sentences are not), and a one-sentence text must be in
    the longer one's lede, where a feed summary comes from (a single shared sentence elsewhere is a quote).
    """
    sentences = [s for s in summary_parts(short.text, settings)[0] if s.size]
    if not sentences:
        return None
    scores = [float(np.isin(s, long.shingles, assume_unique=True).mean()) for s in sentences]
    if min(scores) < settings.summary_sentence_threshold:
        return None
    if len(sentences) == 1:
        lede = summary_parts(long.text, settings)[1]
        if np.isin(sentences[0], lede, assume_unique=True).mean() < settings.summary_sentence_threshold:
            return None
    return min(scores)


def _summary(a: Signature, b: Signature, containment: float, jaccard: float, settings: DedupSettings
             ) -> Match | None:
    """The summary verdict, taking as the summary the shorter text, or either of two of the same size."""
    if containment < settings.summary_containment_threshold or settings.summary_max_words == 0:
        return None
    pairs = [(a, b), (b, a)] if a.size == b.size else [(a, b) if a.size < b.size else (b, a)]
    if any(_summary_score(short, long, settings) is not None for short, long in pairs):
        return Match("near", "summary", containment, jaccard, containment)
    return None


def sample_share(settings: DedupSettings) -> float:
    """The share of the smaller sample two texts must have in common to be worth verifying: half the share a pair
    at the lowest containment any criterion accepts would have, which tolerates sampling noise."""
    return min(settings.containment_threshold, settings.partial_containment_threshold) * 0.5


def min_shared_samples(n_a: int, n_b: int, settings: DedupSettings) -> int:
    """How many sampled shingles two texts with n_a and n_b samples must share to be worth verifying (at least
    one). Mirrored in warehouse/queries/dedup_candidates.sql and flows/warehouse/candidates.py."""
    return max(1, int(min(n_a, n_b) * sample_share(settings)))


_BAND_MASK = np.int64(511)  # bands <= num_perm <= 512: the band fits in the key's low 9 bits


def bucket_keys(buckets: np.ndarray) -> np.ndarray:
    """One BIGINT key per band: the band's bucket hash with the band number in its low 9 bits.

    The warehouse index stores these (migration 0005 folds stored (band, bucket) rows the same way).
    """
    b = np.asarray(buckets, dtype=np.int64)
    return (b & ~_BAND_MASK) | np.arange(b.size, dtype=np.int64)


def _put(first: dict[int, int], more: dict[int, list[int]], keys: list[int], value: int) -> None:
    # Ints only in the common case (a key seen once): no list per key, which the garbage collector would walk.
    for k in keys:
        if first.setdefault(k, value) != value:
            more.setdefault(k, []).append(value)


def _get(first: dict[int, int], more: dict[int, list[int]], k: int) -> list[int]:
    v = first.get(k)
    return [] if v is None else [v, *more.get(k, ())]


class BatchIndex:
    """In-memory LSH and sample index for the articles of one batch, so copies within a batch are found too."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._more_buckets: dict[int, list[int]] = {}
        self._samples: dict[int, int] = {}
        self._more_samples: dict[int, list[int]] = {}
        self._n_samples: dict[int, int] = {}
        self._hashes: dict[str, int] = {}

    def add(self, key: int, sig: Signature) -> None:
        self._hashes.setdefault(sig.text_hash, key)
        self._n_samples[key] = sig.samples.size
        _put(self._buckets, self._more_buckets, bucket_keys(sig.buckets).tolist(), key)
        _put(self._samples, self._more_samples, sig.samples.tolist(), key)

    def candidates(self, sig: Signature, settings: DedupSettings) -> list[int]:
        found: dict[int, None] = {}
        exact = self._hashes.get(sig.text_hash)
        if exact is not None:
            found[exact] = None
        for k in bucket_keys(sig.buckets).tolist():
            for key in _get(self._buckets, self._more_buckets, k):
                found[key] = None
        counts: dict[int, int] = {}
        for h in sig.samples.tolist():
            for key in _get(self._samples, self._more_samples, h):
                counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            if n >= min_shared_samples(sig.samples.size, self._n_samples[key], settings):
                found[key] = None
        return list(found)
