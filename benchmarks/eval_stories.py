"""Stories: how well articles about the same event are grouped, on real headlines labelled by hand.

The items are 921 headlines from Google News's US top stories over six days (benchmarks/stories_corpus.py reads
them by reference; benchmarks/data/stories/ holds the labels, the rules they follow, the second pass's
disagreements and the split by day). Scored beside each other, each split clustered on its own:

- a title-only baseline: TF-IDF cosine of titles, online single link (an item joins the story of its most similar
  earlier item within the window when the cosine reaches a threshold), the threshold chosen on the tune days;
- the story clusterer, `flows.text.stories.cluster_offline` with its default settings, when it is importable;
- two references: every item alone, and the labels with the four Venezuela stories as one (the ceiling of a method
  that cannot tell them apart: pairwise scores are mostly that one event's, docs/stories.md).

Reported: B-cubed and pairwise precision/recall/F1 per split and per language pair, and the cross-day merges of
unrelated events (item pairs in one predicted story whose gold stories differ and whose days differ).

A second set, "Stories on real headlines with summaries" (`evaluate_rss`): 745 news items with title and summary
from 24 outlets' RSS feeds over four days of December 2023 (benchmarks/stories_rss_corpus.py reads them by
reference; benchmarks/data/stories_rss/ holds labels, rules, disagreements, split and selection rule), scored the
same way with a title-only and a title+summary TF-IDF baseline, the clusterer with its defaults (the summary as its
text) and, as an extra row, with the threshold/entity weight that scored best on that set's tune days.
`python -m benchmarks.eval_stories` runs both sets into the same results file.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.machine import header, table
from benchmarks.stories_corpus import COMMIT, DATA, REPO, CorpusMissingError, Headline, load_items, scan

RESULTS = Path(__file__).parent / "results"
LANGUAGE = "en"  # Google News's US edition: every item is in English
BASELINE_WINDOW = timedelta(days=3)
WARM_LABEL = "story clusterer, warm start"
WARM_NOTE = ("Warm start: the same, its document frequencies first counted over the items of as many days before "
             "the split (unlabelled, same source and selection; for the report days, the tune days' items), as a "
             "warehouse that ran before holds them; each split is still clustered on its own.")
THRESHOLDS = [round(0.05 * i, 2) for i in range(2, 19)]
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_STOP = frozenset(
    "a an the and or but of to in on at for from by with as is are was were be been it its this that these those "
    "after before over into about amid says say said new how what why who when where here there than more most "
    "not no can could will would may might has have had his her their our your you we they he she i s vs".split())


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def bcubed(gold: Mapping[str, str], pred: Mapping[str, str]) -> Scores:
    """B-cubed precision/recall/F1 (Bagga & Baldwin): per item, the share of its predicted (gold) cluster that
    shares its gold (predicted) cluster, averaged over items."""
    items = list(gold)
    g_size = Counter(gold[i] for i in items)
    p_size = Counter(pred[i] for i in items)
    both = Counter((gold[i], pred[i]) for i in items)
    p = sum(both[gold[i], pred[i]] / p_size[pred[i]] for i in items) / len(items)
    r = sum(both[gold[i], pred[i]] / g_size[gold[i]] for i in items) / len(items)
    return Scores(p, r, _f1(p, r))


def pairwise(gold: Mapping[str, str], pred: Mapping[str, str]) -> Scores:
    """Pairwise precision/recall/F1 over item pairs put together; with no pair predicted (or none in the gold)
    precision (recall) is 1 by convention."""
    items = list(gold)
    both = Counter((gold[i], pred[i]) for i in items)
    tp = sum(math.comb(n, 2) for n in both.values())
    pred_pairs = sum(math.comb(n, 2) for n in Counter(pred[i] for i in items).values())
    gold_pairs = sum(math.comb(n, 2) for n in Counter(gold[i] for i in items).values())
    p = tp / pred_pairs if pred_pairs else 1.0
    r = tp / gold_pairs if gold_pairs else 1.0
    return Scores(p, r, _f1(p, r))


def pairwise_where(gold: Mapping[str, str], pred: Mapping[str, str], keep: Callable[[str, str], bool]) -> Scores:
    """Pairwise scores over the item pairs `keep` selects (e.g. one language pair), by enumeration."""
    items = sorted(gold)
    tp = pred_pairs = gold_pairs = 0
    for a_i, a in enumerate(items):
        for b in items[a_i + 1:]:
            if not keep(a, b):
                continue
            same_g, same_p = gold[a] == gold[b], pred[a] == pred[b]
            tp += same_g and same_p
            gold_pairs += same_g
            pred_pairs += same_p
    p = tp / pred_pairs if pred_pairs else 1.0
    r = tp / gold_pairs if gold_pairs else 1.0
    return Scores(p, r, _f1(p, r))


def cross_day_merges(gold: Mapping[str, str], pred: Mapping[str, str], day: Mapping[str, str]) -> tuple[int, int]:
    """(item pairs, predicted stories) where one predicted story holds items of different gold stories on
    different days: a merge of unrelated events across days."""
    members: dict[str, list[str]] = defaultdict(list)
    for i in gold:
        members[pred[i]].append(i)
    pairs = stories = 0
    for ids in members.values():
        bad = sum(1 for x, a in enumerate(ids) for b in ids[x + 1:] if gold[a] != gold[b] and day[a] != day[b])
        pairs += bad
        stories += bad > 0
    return pairs, stories


def _tokens(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if len(w) > 1 and w not in _STOP]


def _tfidf(texts: Sequence[str]) -> list[dict[str, float]]:
    """L2-normalised TF-IDF vectors; IDF from these texts only (nothing is learnt from other days)."""
    docs = [Counter(_tokens(t)) for t in texts]
    df = Counter(w for d in docs for w in d)
    n = len(docs)
    out = []
    for d in docs:
        vec = {w: c * (math.log((1 + n) / (1 + df[w])) + 1) for w, c in d.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        out.append({w: v / norm for w, v in vec.items()})
    return out


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def title_baseline(items: Sequence[Any], threshold: float, text: Callable[[Any], str] = lambda h: h.title
                   ) -> dict[str, str]:
    """Online single link over TF-IDF of each item's `text` (its title unless told): in arrival order, an item
    joins the story of its most similar earlier item within BASELINE_WINDOW when the cosine is >= threshold, else
    starts a story."""
    ordered = sorted(items, key=lambda h: (h.first_seen, h.key))
    vecs = _tfidf([text(h) for h in ordered])
    story: dict[str, str] = {}
    for i, item in enumerate(ordered):
        best, best_sim = None, threshold
        for j in range(i):
            if item.first_seen - ordered[j].first_seen > BASELINE_WINDOW:
                continue
            sim = _cosine(vecs[i], vecs[j])
            if sim >= best_sim:
                best, best_sim = ordered[j].key, sim
        story[item.key] = story[best] if best else item.key
    return story


def read_labels(data: Path = DATA) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """(key -> gold story, key -> day, split name -> days) from a set's labels.csv and split.json."""
    with (data / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    split = json.loads((data / "split.json").read_text())
    return ({r["key"]: r["story"] for r in rows}, {r["key"]: r["day"] for r in rows},
            {"tune": split["tune"], "report": split["report"]})


def tune_baseline(items: Sequence[Any], gold: Mapping[str, str], text: Callable[[Any], str] = lambda h: h.title
                  ) -> tuple[float, list[list[object]]]:
    """The threshold with the best pairwise F1 on these (tune) items (ties go to the higher threshold), and the
    curve: [threshold, B-cubed F1, pairwise P, R, F1] per threshold tried."""
    curve = []
    for t in THRESHOLDS:
        pred = title_baseline(items, t, text)
        p = pairwise(gold, pred)
        curve.append([t, round(bcubed(gold, pred).f1, 3), round(p.precision, 3), round(p.recall, 3), round(p.f1, 3)])
    best = max(curve, key=lambda row: (row[4], row[0]))
    return float(best[0]), curve


def story_item_maker(with_summary: bool = False) -> Callable[[Sequence[Any]], list[Any]]:
    """A function that turns headlines into the clusterer's items, with the English tagger loaded once. The first
    source saved titles only, so the title is also the text the tagger and the clusterer read; with_summary (items
    with a `summary`, the RSS set) makes the summary the clusterer's text and tags entities on title + summary."""
    from flows.core.sections import EntitySettings
    from flows.text import entities
    from flows.text.stories import StoryItem

    settings = EntitySettings()
    nlp = entities.load_pipeline(settings.pipelines[LANGUAGE])

    def make(items: Sequence[Any]) -> list[Any]:
        texts = [f"{h.title}. {h.summary}" if with_summary else h.title for h in items]
        tagged = entities.tag(nlp, texts, settings.labels, settings.max_chars, settings.label_map)
        return [StoryItem(article_id=h.key, title=h.title, text=h.summary if with_summary else "",
                          published=h.first_seen, outlet=h.outlet,
                          language=LANGUAGE, entities=tuple(m.name for m in mentions))
                for h, mentions in zip(items, tagged, strict=True)]

    return make


def days_before(days: Sequence[str]) -> list[str]:
    """As many days as `days` holds, ending the day before the first: a split's warm-up days."""
    first = date.fromisoformat(min(days))
    return [(first - timedelta(days=n)).isoformat() for n in range(len(days), 0, -1)]


def untagged(items: Sequence[Any], with_summary: bool = False) -> list[Any]:
    """Items for the clusterer's document frequencies only (cluster_offline's `background`): no entities."""
    from flows.text.stories import StoryItem

    return [StoryItem(article_id=h.key, title=h.title, text=h.summary if with_summary else "",
                      published=h.first_seen, outlet=h.outlet, language=LANGUAGE, entities=()) for h in items]


def clusterer() -> tuple[Callable[..., dict[str, str]] | None, str]:
    """The story clusterer wrapped to take headlines (and the warm-up days' headlines), or (None, why not)."""
    try:
        from flows.text.stories import cluster_offline
    except ImportError as exc:
        return None, f"`flows.text.stories` is not importable here ({exc}); only the baseline is reported"
    make = story_item_maker()

    def run(items: Sequence[Headline], background: Sequence[Headline] = ()) -> dict[str, str]:
        return dict(cluster_offline(make(items), background=untagged(background)))

    return run, "`flows.text.stories.cluster_offline`, default settings"


def _scores_rows(name: str, split: str, gold: Mapping[str, str], pred: Mapping[str, str],
                 day: Mapping[str, str]) -> list[object]:
    b, p = bcubed(gold, pred), pairwise(gold, pred)
    merges, merged_stories = cross_day_merges(gold, pred, day)
    return [name, split, len(set(pred.values())), round(b.precision, 3), round(b.recall, 3), round(b.f1, 3),
            round(p.precision, 3), round(p.recall, 3), round(p.f1, 3), f"{merges} ({merged_stories} stories)"]


def _describe(items: Sequence[Any], gold: Mapping[str, str], days: Mapping[str, list[str]],
              day: Mapping[str, str]) -> str:
    outlets = {h.key: h.outlet for h in items}
    rows = []
    for name, split_days in days.items():
        keys = [k for k in gold if day[k] in split_days]
        sizes = Counter(gold[k] for k in keys)
        by_story: dict[str, set[str]] = defaultdict(set)
        for k in keys:
            by_story[gold[k]].add(outlets[k])
        rows.append([name, ", ".join(split_days), len(keys), len({outlets[k] for k in keys}), len(sizes),
                     sum(1 for n in sizes.values() if n > 1), sum(1 for s in by_story.values() if len(s) > 1)])
    out = table(["split", "days", "items", "outlets", "gold stories", "with 2+ items", "with 2+ outlets"], rows)
    for name, split_days in days.items():
        in_split = Counter(gold[k] for k in gold if day[k] in split_days)
        pairs = sum(math.comb(n, 2) for n in in_split.values())
        top = ", ".join(f"{s} {n} items ({math.comb(n, 2) / pairs:.0%} of pairs)" for s, n in in_split.most_common(3))
        out += f"\nLargest {name} stories: {top}."
    return out + "\n"


def evaluate() -> str:
    items = load_items()
    gold, day, days = read_labels()
    if set(gold) != {h.key for h in items}:
        raise CorpusMissingError("labels.csv and items.csv name different items")
    split_items = {name: [h for h in items if day[h.key] in ds] for name, ds in days.items()}
    split_gold = {name: {h.key: gold[h.key] for h in its} for name, its in split_items.items()}
    threshold, curve = tune_baseline(split_items["tune"], split_gold["tune"])
    run, note = clusterer()
    rows, language_rows = [], []
    for name, its in split_items.items():
        preds = {"every item alone (reference)": {h.key: h.key for h in its},
                 # The labels with the four Venezuela stories (operation, oil, markets, repression: same actors, same
                 # words) merged: the ceiling of a method that cannot tell them apart.
                 "labels, Venezuela's 4 stories as 1 (reference)": {
                     h.key: "venezuela" if gold[h.key].startswith("venezuela-") else gold[h.key] for h in its},
                 f"title-only baseline (t={threshold})": title_baseline(its, threshold)}
        if run is not None:
            preds["story clusterer"] = run(its)
            before = days_before(days[name])
            preds[WARM_LABEL] = run(its, scan(before[0], before[-1]))
        for label, pred in preds.items():
            rows.append(_scores_rows(label, name, split_gold[name], pred, day))
            pw = pairwise_where(split_gold[name], pred, lambda a, b: True)
            language_rows.append([label, name, f"{LANGUAGE}-{LANGUAGE}", round(pw.precision, 3),
                                  round(pw.recall, 3), round(pw.f1, 3)])
    out = "## Stories on real headlines\n\n"
    out += (f"Items: {len(items)} headlines (title and outlet; the source kept no summary) first seen in Google "
            f"News's US top stories from {min(day.values())} to {max(day.values())}, read by reference from "
            f"`{REPO}` at `{COMMIT[:12]}`; labelled by hand into stories (benchmarks/data/stories/RULES.md, "
            "second pass in DISAGREEMENTS.md). Each split is clustered on its own; the baseline's threshold was "
            "chosen on the tune days only (pairwise F1).\n\n")
    out += _describe(items, gold, days, day) + "\n"
    out += table(["method", "split", "predicted stories", "B3 P", "B3 R", "B3 F1", "pair P", "pair R", "pair F1",
                  "cross-day merges of unrelated events (pairs)"], rows) + "\n"
    out += "Per language pair (pairwise; every item is English, so there is no cross-language pair here):\n\n"
    out += table(["method", "split", "languages", "pair P", "pair R", "pair F1"], language_rows) + "\n"
    out += f"Clusterer: {note}. {WARM_NOTE}\n\n"
    out += "Title-only baseline's threshold on the tune days (the row with the best pairwise F1 is used):\n\n"
    out += table(["threshold", "B3 F1", "pair P", "pair R", "pair F1"], curve)
    return out


# The grid over the clusterer's settings tried on the RSS set's tune days only (defaults: 0.15 and 0.25).
GRID_THRESHOLDS = (0.10, 0.15, 0.20, 0.30)
GRID_ENTITY_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
RSS_TITLE = "Stories on real headlines with summaries"


def _summary_text(item: Any) -> str:
    return f"{item.title} {item.summary}"


def evaluate_rss() -> str:
    """The second set: news items with title and summary from 24 outlets' RSS feeds (benchmarks/data/stories_rss/).
    Same protocol and scorer; a title-only and a title+summary baseline, the clusterer with its defaults and, as an
    extra row, with the settings that score best on this set's tune days."""
    from benchmarks import stories_rss_corpus as rss

    items = rss.load_items()
    gold, day, days = read_labels(rss.DATA)
    if set(gold) != {h.key for h in items}:
        raise CorpusMissingError("stories_rss labels.csv and items.csv name different items")
    split_items = {name: [h for h in items if day[h.key] in ds] for name, ds in days.items()}
    split_gold = {name: {h.key: gold[h.key] for h in its} for name, its in split_items.items()}
    t_title, curve_title = tune_baseline(split_items["tune"], split_gold["tune"])
    t_text, curve_text = tune_baseline(split_items["tune"], split_gold["tune"], _summary_text)
    grid_rows: list[list[Any]] = []
    chosen = None
    made: dict[str, list[Any]] = {}
    try:
        from flows.text.stories import StorySettings, cluster_offline
    except ImportError as exc:
        note = f"`flows.text.stories` is not importable here ({exc}); only the baselines are reported"
    else:
        make = story_item_maker(with_summary=True)
        made = {name: make(its) for name, its in split_items.items()}
        best = None
        for t in GRID_THRESHOLDS:
            for w in GRID_ENTITY_WEIGHTS:
                pred = dict(cluster_offline(made["tune"], StorySettings(threshold=t, entity_weight=w)))
                p, b = pairwise(split_gold["tune"], pred), bcubed(split_gold["tune"], pred)
                grid_rows.append([t, w, round(b.f1, 3), round(p.precision, 3), round(p.recall, 3), round(p.f1, 3)])
                if best is None or p.f1 > best[0]:
                    best = (p.f1, t, w)
        assert best is not None
        chosen = StorySettings(threshold=best[1], entity_weight=best[2])
        note = ("`flows.text.stories.cluster_offline`; StoryItem.text = the summary, entities tagged on title + "
                "summary with the English pipeline")
    rows = []
    for name, its in split_items.items():
        preds = {"every item alone (reference)": {h.key: h.key for h in its},
                 f"title-only baseline (t={t_title})": title_baseline(its, t_title),
                 f"title+summary baseline (t={t_text})": title_baseline(its, t_text, _summary_text)}
        if made:
            preds["story clusterer, default settings"] = dict(cluster_offline(made[name]))
            preds[WARM_LABEL + ", default settings"] = dict(cluster_offline(
                made[name], background=untagged(rss.select(rss.candidates(days_before(days[name]))), True)))
            if chosen is not None:
                preds[f"clusterer, settings chosen on this set's tune days: threshold={chosen.threshold}, "
                      f"entity_weight={chosen.entity_weight}"] = dict(cluster_offline(made[name], chosen))
        for label, pred in preds.items():
            rows.append(_scores_rows(label, name, split_gold[name], pred, day))
    outlets = len({h.outlet for h in items})
    out = f"## {RSS_TITLE}\n\n"
    out += (f"Items: {len(items)} news items (title and the feed's summary) from {outlets} outlets' RSS feeds, "
            f"published {min(day.values())} to {max(day.values())} UTC, read by reference from `{rss.REPO}` at "
            f"`{rss.COMMIT[:12]}` (selection rule in benchmarks/data/stories_rss/README.md); labelled by hand into "
            "stories (RULES.md there, second pass in DISAGREEMENTS.md). Each split is clustered on its own; the "
            "baselines' thresholds and the extra clusterer row's settings were chosen on the tune days only "
            "(pairwise F1).\n\n")
    out += _describe(items, gold, days, day) + "\n"
    out += table(["method", "split", "predicted stories", "B3 P", "B3 R", "B3 F1", "pair P", "pair R", "pair F1",
                  "cross-day merges of unrelated events (pairs)"], rows) + "\n"
    out += f"Clusterer: {note}. Every item is English (`en-en` only). {WARM_NOTE}\n\n"
    if grid_rows:
        out += ("Clusterer settings tried on the tune days (StorySettings.threshold x entity_weight, the rest at "
                "their defaults; the best pairwise F1 is the extra row above):\n\n")
        out += table(["threshold", "entity_weight", "B3 F1", "pair P", "pair R", "pair F1"], grid_rows) + "\n"
    out += "Title-only baseline's threshold on the tune days:\n\n" + table(
        ["threshold", "B3 F1", "pair P", "pair R", "pair F1"], curve_title) + "\n"
    out += "Title+summary baseline's threshold on the tune days:\n\n" + table(
        ["threshold", "B3 F1", "pair P", "pair R", "pair F1"], curve_text)
    return out


def section() -> str:
    try:
        text = evaluate()
    except CorpusMissingError as exc:
        text = f"## Stories on real headlines\n\nNot run: {exc}\n"
    try:
        text += "\n" + evaluate_rss()
    except CorpusMissingError as exc:
        text += f"\n## {RSS_TITLE}\n\nNot run: {exc}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stories_eval.md").write_text(f"{header('stories evaluation')}\n{text}")
    return text


if __name__ == "__main__":
    print(section())
