"""Named entities: language routing to a spaCy pipeline per language, each pipeline reduced to the components its
entity recogniser reads, and per-article name normalisation."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from flows.core.languages import language_tag

if TYPE_CHECKING:
    from spacy.language import Language

    from flows.core.sections import EntitySettings

# Shorter texts (a title, a one-line summary) are too little for language identification to be trusted.
_MIN_DETECT_CHARS = 50
_DETECT_CHARS = 5000
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(frozen=True)
class Mention:
    name: str
    label: str
    mentions: int


def detect_language(text: str) -> str | None:
    """The language py3langid identifies in the text (through trafilatura), or None when it is too short or
    py3langid is not installed."""
    if len(text.strip()) < _MIN_DETECT_CHARS:
        return None
    from trafilatura.utils import LANGID_FLAG, language_classifier

    return language_tag(language_classifier(text[:_DETECT_CHARS], "")) if LANGID_FLAG else None


def route(language: str | None, feed_language: str | None, text: str, settings: EntitySettings
          ) -> tuple[str | None, str | None]:
    """(pipeline name, None) for the article's language, or (None, why it is not tagged).

    The language is the page's, else the feed's declared one, else the one identified in the text, else
    settings.default_language.
    """
    lang = (language_tag(language) or language_tag(feed_language) or detect_language(text)
            or settings.default_language)
    name = settings.pipelines.get(lang)
    if name is None:
        return None, f"no NER pipeline for language {lang!r}"
    return name, None


def ner_components(nlp: Language) -> set[str]:
    """The components entity tagging needs: those that set doc.ents, and the ones they listen to or require."""
    names = [name for name, _ in nlp.components]
    metas = {name: nlp.get_pipe_meta(name) for name in names}
    # A shared embedding layer (Tok2Vec, spacy-transformers' Transformer) lists its listeners by component name.
    feeds = {name: set(getattr(proc, "listener_map", None) or ()) for name, proc in nlp.components}
    keep = {name for name in names if "doc.ents" in metas[name].assigns}
    grew = True
    while grew:
        needed = {attr for name in keep for attr in metas[name].requires}
        more = {name for name in names if name not in keep
                and (feeds[name] & keep or needed & set(metas[name].assigns))}
        keep |= more
        grew = bool(more)
    return keep


@lru_cache(maxsize=4)
def load_pipeline(name: str, *, trim: bool = True) -> Language:
    """The named spaCy pipeline, by default with only the components ner_components keeps. Cached per process."""
    import spacy

    nlp = spacy.load(name)
    if not trim:
        return nlp
    keep = ner_components(nlp)
    if not keep:
        raise ValueError(f"spaCy pipeline {name!r} has no component that sets entities")
    # Last first: a listener goes before the embedding layer it listens to.
    for component in reversed([n for n, _ in nlp.components if n not in keep]):
        nlp.remove_pipe(component)
    return nlp


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


def tag(nlp: Language, texts: list[str], labels: Iterable[str], max_chars: int,
        label_map: Mapping[str, str] | None = None) -> list[list[Mention]]:
    """Entities of each text, normalised per text; label_map renames a model's labels before the label filter."""
    labels = tuple(labels)
    rename = label_map or {}
    docs = nlp.pipe((t[:max_chars] for t in texts), batch_size=16)
    return [normalise(((e.text, rename.get(e.label_, e.label_)) for e in doc.ents), labels) for doc in docs]


def tag_routed(items: list[tuple[str, str]], settings: EntitySettings) -> list[tuple[list[Mention], str]]:
    """Tag each (text, pipeline name) with that pipeline, one nlp.pipe per pipeline: mentions and pipeline_version."""
    by_pipeline: dict[str, list[int]] = {}
    for i, (_, name) in enumerate(items):
        by_pipeline.setdefault(name, []).append(i)
    out: list[tuple[list[Mention], str]] = [([], "")] * len(items)
    for name, idx in by_pipeline.items():
        nlp = load_pipeline(name)
        version = pipeline_version(nlp)
        tagged = tag(nlp, [items[i][0] for i in idx], settings.labels, settings.max_chars, settings.label_map)
        for i, mentions in zip(idx, tagged, strict=True):
            out[i] = (mentions, version)
    return out


def configured(settings: EntitySettings) -> list[str]:
    """Names of every configured pipeline, once each."""
    return sorted(set(settings.pipelines.values()))
