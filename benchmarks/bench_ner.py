"""NER speed, one core: the full spaCy pipeline, the fixed exclude list used before (tok2vec + ner), and
flows.text.entities.load_pipeline (only the components ner listens to), timed in one run on the same texts.

    python -m benchmarks.bench_ner            # 40 English fundus articles
    python -m benchmarks.bench_ner --n 40 --lang en
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from benchmarks.corpora import fundus_pages
from flows.core.settings import Settings
from flows.text import entities

# The fixed list flows/text/entities.py excluded before the listener-based trimming; the shared tok2vec stayed.
OLD_EXCLUDE = (
    "tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer",
    "trainable_lemmatizer", "entity_linker", "entity_ruler_disabled", "textcat", "textcat_multilabel",
    "spancat",
)
ROUNDS = 3  # each pipeline timed this many times, interleaved, the fastest kept: the machine is shared


@dataclass
class NerSpeed:
    pipeline: str
    texts: int
    full_ms: float  # per text
    fixed_ms: float  # the old fixed exclude list
    reduced_ms: float  # flows.text.entities.load_pipeline, trimmed by listeners
    same_as_fixed: float  # share of articles whose entities are identical to the fixed-exclude pipeline's
    same_entities: float  # ... to the full pipeline's


def run(settings: Settings, *, n: int = 40, lang: str = "en") -> NerSpeed:
    import spacy

    texts = [p.body for p in fundus_pages(lang=lang)][:n]
    name = settings.entities.pipelines[lang]
    labels, cap, rename = settings.entities.labels, settings.entities.max_chars, settings.entities.label_map
    nlps = {
        "full": spacy.load(name),
        "fixed": spacy.load(name, exclude=list(OLD_EXCLUDE)),
        "trimmed": entities.load_pipeline(name),
    }
    best: dict[str, float] = dict.fromkeys(nlps, float("inf"))
    found: dict[str, list[list[entities.Mention]]] = {}
    for nlp in nlps.values():
        entities.tag(nlp, texts[:3], labels, cap, rename)  # warm up
    for _ in range(ROUNDS):
        for key, nlp in nlps.items():
            start = time.perf_counter()
            found[key] = entities.tag(nlp, texts, labels, cap, rename)
            best[key] = min(best[key], time.perf_counter() - start)

    def same(a: str, b: str) -> float:
        return sum(x == y for x, y in zip(found[a], found[b], strict=True)) / len(texts)

    ms = {k: v / len(texts) * 1000 for k, v in best.items()}
    return NerSpeed(name, len(texts), ms["full"], ms["fixed"], ms["trimmed"], same("trimmed", "fixed"),
                    same("trimmed", "full"))


def report(r: NerSpeed, lang: str) -> str:
    """The result as a markdown table and one sentence."""
    rows = [("full spaCy pipeline", r.full_ms), ("fixed exclude list (tok2vec + ner), before", r.fixed_ms),
            ("flows.text.entities.load_pipeline (listener-trimmed)", r.reduced_ms)]
    out = "| pipeline | ms / article (1 core) |\n|---|---|\n"
    out += "".join(f"| {label} | {v:.1f} |\n" for label, v in rows)
    out += (f"\n`{r.pipeline}` on {r.texts} {lang} fundus articles, fastest of {ROUNDS} interleaved rounds: "
            f"trimmed is {r.fixed_ms / r.reduced_ms:.2f}x the fixed list and {r.full_ms / r.reduced_ms:.2f}x "
            f"the full pipeline. Identical entities: {r.same_as_fixed:.0%} of articles against the fixed list, "
            f"{r.same_entities:.0%} against the full pipeline (its parser's sentence boundaries move a few "
            "spans).\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="articles (keep it small on a shared machine)")
    parser.add_argument("--lang", default="en", help="fundus html_lang; needs a pipeline in [entities] pipelines")
    args = parser.parse_args()
    print(report(run(Settings(), n=args.n, lang=args.lang), args.lang))


if __name__ == "__main__":
    main()
