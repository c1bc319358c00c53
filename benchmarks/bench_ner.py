"""NER speed: the full spaCy pipeline against flows.entities.load_pipeline (only what NER reads), one core."""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.corpora import fundus_pages
from flows import entities
from flows.settings import Settings


@dataclass
class NerSpeed:
    texts: int
    full_ms: float  # per text
    reduced_ms: float
    same_entities: float  # share of articles whose entities are identical


def run(settings: Settings, *, n: int = 30) -> NerSpeed:
    import spacy

    texts = [p.body for p in fundus_pages(lang="en")][:n]
    name, labels, cap = settings.entities.pipeline, settings.entities.labels, settings.entities.max_chars
    full = spacy.load(name)
    reduced = entities.load_pipeline(name)
    out = {}
    for key, nlp in (("full", full), ("reduced", reduced)):
        entities.tag(nlp, texts[:5], labels, cap)  # warm up
        start = time.perf_counter()
        out[key] = (entities.tag(nlp, texts, labels, cap), time.perf_counter() - start)
    return NerSpeed(len(texts), out["full"][1] / len(texts) * 1000, out["reduced"][1] / len(texts) * 1000,
                    sum(a == b for a, b in zip(out["full"][0], out["reduced"][0], strict=True)) / len(texts))
