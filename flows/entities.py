"""Named entities: a spaCy pipeline reduced to what NER needs, and per-article name normalisation."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from flows.settings import EntitySettings

if TYPE_CHECKING:
    from spacy.language import Language

# Components NER never reads: leaving them out is most of the tagging speed-up (see docs/entities.md).
_NOT_FOR_NER = (
    "tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer",
    "trainable_lemmatizer", "entity_linker", "entity_ruler_disabled", "textcat", "textcat_multilabel",
    "spancat",
)
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(frozen=True)
class Mention:
    name: str
    label: str
    mentions: int


@lru_cache(maxsize=2)
def load_pipeline(name: str) -> Language:
    """The named spaCy pipeline with only tokenizer, tok2vec/transformer and ner. Cached per process."""
    import spacy

    return spacy.load(name, exclude=list(_NOT_FOR_NER))


def pipeline_version(nlp: Language) -> str:
    return f"{nlp.meta.get('lang', '')}_{nlp.meta.get('name', '')}-{nlp.meta.get('version', '')}"


def entity_id(name: str, label: str) -> int:
    """Stable 64-bit key of a canonical (name, label) pair."""
    digest = hashlib.blake2b(f"{label}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def clean_name(text: str) -> str:
    """Trim what spaCy leaves around a name: whitespace, edge punctuation, possessives, a lower-case 'the'."""
    name = " ".join(text.split())
    name = _POSSESSIVE.sub("", name)
    name = _EDGE_PUNCT.sub("", name)
    if name.startswith("the "):
        name = name[4:]
    return name


def _is_part(short: list[str], long: list[str]) -> bool:
    n = len(short)
    return n < len(long) and any(long[i : i + n] == short for i in range(len(long) - n + 1))


def normalise(raw: Iterable[tuple[str, str]], labels: Iterable[str]) -> list[Mention]:
    """Merge one article's raw (text, label) mentions into canonical names with counts.

    A shorter mention that is a whole-word part of exactly one longer mention of the same label becomes that
    longer name ('Putin' -> 'Vladimir Putin'); when it fits several ('Kim' in two people) it is kept as is.
    A one-word ORG that is part of exactly one PERSON name becomes that person: spaCy often tags a surname
    alone as an organisation ('Wang' beside 'Wang Yi').
    """
    keep = set(labels)
    counts: Counter[tuple[str, str]] = Counter()
    for text, label in raw:
        if label not in keep:
            continue
        name = clean_name(text)
        if name and any(c.isalpha() for c in name):
            counts[(name, label)] += 1

    names_by_label: dict[str, list[list[str]]] = {}
    for name, label in counts:
        names_by_label.setdefault(label, []).append(name.split())

    def target(name: str, label: str) -> tuple[str, str]:
        words = name.split()
        longer = [w for w in names_by_label.get(label, []) if _is_part(words, w)]
        if len(longer) >= 1:
            # Prefer the longest names; ambiguity between them leaves the mention alone.
            best = max(len(w) for w in longer)
            tops = {" ".join(w) for w in longer if len(w) == best}
            if len(tops) == 1:
                return tops.pop(), label
            return name, label
        if label == "ORG" and len(words) == 1:
            people = {" ".join(w) for w in names_by_label.get("PERSON", []) if _is_part(words, w)}
            if len(people) == 1:
                return people.pop(), "PERSON"
        return name, label

    merged: Counter[tuple[str, str]] = Counter()
    for (name, label), n in counts.items():
        merged[target(name, label)] += n
    return [Mention(name, label, n) for (name, label), n in sorted(merged.items())]


def tag(nlp: Language, texts: list[str], labels: Iterable[str], max_chars: int) -> list[list[Mention]]:
    """Entities of each text, normalised per text."""
    labels = tuple(labels)
    docs = nlp.pipe((t[:max_chars] for t in texts), batch_size=16)
    return [normalise(((e.text, e.label_) for e in doc.ents), labels) for doc in docs]


def plan(language: str | None, feed_language: str | None, settings: EntitySettings) -> tuple[str | None, str | None]:
    """The pipeline for a text in `language` (else the feed's), or None and why it is not tagged."""
    return settings.pipeline, None


def labels_for(nlp: Language, settings: EntitySettings) -> tuple[str, ...]:
    """The entity labels kept from this pipeline."""
    return tuple(settings.labels)


def configured(settings: EntitySettings) -> list[str]:
    """Names of every configured pipeline."""
    return [settings.pipeline]
