"""Stories: different articles about the same event, grouped online as they arrive.

Each article, in canonical order (earliest first, then by id), joins the best-matching open story or starts one.
The match is a TF-IDF cosine of the article's terms (flows/text/storyterms.py) with the story's centroid, blended with
the share of entities they have in common (weighted more when the languages differ), times a decay with the time
since the story's last article. Candidates are the open stories sharing one of the article's top terms or one of its
entities (postings), never a scan. A copy (copy_of) joins its original's story and changes no centroid.

Everything is integer where it is summed (quantised weights, counts), so the same articles in the same order give
bit-for-bit the same stories, whether the stories live in memory (cluster_offline) or in the warehouse
(flows/warehouse/storystore.py supplies them through `Backing`). docs/stories.md explains the method and its limits.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from flows.text.storyterms import term_counts

if TYPE_CHECKING:
    from flows.core.sections import StoriesSettings

_SCALE = 10_000  # weights are quantised to integers: sums are exact whatever their order


@dataclass(frozen=True)
class StoryItem:
    article_id: str
    title: str
    text: str
    published: datetime  # tz-aware UTC: the article's time on the story's clock
    outlet: str
    language: str | None
    entities: tuple[str, ...]  # normalised names (flows/text/entities.py)
    copy_of: str | None = None


@dataclass(frozen=True)
class StorySettings:
    window_days: float = 3.0  # a story takes articles until this long after its last one
    decay: float = 1.5  # half-life (days) of a match's score with the time since the story's last article
    threshold: float = 0.15  # the least score that joins a story
    # Share of the score from shared entities, same language. With a text, the names are among the article's
    # terms already: counting them again chained unrelated events through frequent names (Biden, Putin) on the
    # labelled set with summaries; a title alone has too few words to match without them (docs/stories.md).
    entity_weight: float = 0.05  # ... an article with a text
    title_entity_weight: float = 0.25  # ... an article with a title only
    cross_entity_weight: float = 0.75  # ... when the article's language is not the story's
    entity_floor: int = 3  # shared entities are counted out of at least this many
    max_terms: int = 60  # terms kept in an article's vector
    centroid_terms: int = 150  # terms kept in a story's centroid
    query_terms: int = 12  # an article's top terms looked up in the postings
    max_candidates: int = 10  # stories scored per article: those sharing most of its keys ...
    min_shared_keys: int = 2  # ... and at least this many of them
    body_words: int = 400  # words of the body read

    @classmethod
    def from_config(cls, section: StoriesSettings) -> StorySettings:
        """The clusterer's settings from the [stories] config section."""
        return cls(**section.model_dump(exclude={"enabled"}))


@dataclass
class Story:
    """A story's live state: what matching an article against it needs."""
    story_id: str
    first: datetime
    last: datetime  # the newest article's time (copies aside): the story is open until last + window
    size: int
    # The centroid (sum of member vectors, top centroid_terms), or how to read it when first asked: a batch reads
    # about twice the stored stories it scores, and reading a centroid costs more than scoring it.
    centroid: dict[str, int] | Callable[[], dict[str, int]]
    entities: dict[str, int]  # entity -> members naming it
    languages: dict[str, int]
    _norm: float | None = field(default=None, repr=False)

    @property
    def terms(self) -> dict[str, int]:
        if not isinstance(self.centroid, dict):
            self.centroid = self.centroid()
        return self.centroid

    @terms.setter
    def terms(self, value: dict[str, int]) -> None:
        self.centroid = value

    def norm(self) -> float:
        if self._norm is None:
            self._norm = math.sqrt(sum(w * w for w in self.terms.values()))
        return self._norm


@dataclass(frozen=True)
class Placement:
    story_id: str
    similarity: float  # the score that placed it (1.0 for a copy, 0.0 for an article that started its story)
    started: bool


# A key's postings: the ids of the stories that have it, and minus their last articles' times in epoch microseconds,
# in that (ascending) order, so the stories still open at a time are a prefix (bisect). Ids as integers: a batch
# reads 50,000-100,000 postings, and only the few that can rank are turned into the ids' text.
Postings = tuple[list[int], list[int]]
_NO_POSTINGS: Postings = ([], [])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def days_before(t: datetime, days: float) -> datetime:
    """`t` less `days`, or the earliest time there is when that falls before year 1 (a feed's "0001-01-01")."""
    try:
        return t - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def epoch_us(t: datetime) -> int:
    """Microseconds since the epoch: a time compared as an integer, exactly (times carry microseconds at most)."""
    return (t - _EPOCH) // timedelta(microseconds=1)


class Backing(Protocol):
    """Where stories and document frequencies live beyond memory (the warehouse); read by key, never scanned."""
    def df(self, terms: Sequence[str]) -> dict[str, int]: ...

    def postings(self, terms: Sequence[str], entities: Sequence[str], since: datetime | None
                 ) -> dict[tuple[str, str], Postings]:
        """(kind, key) -> the postings of the stored live stories that have this centroid term (kind t) or entity
        (kind e) and whose last article is at or after `since`, when given; keys no story has may be left out."""
        ...

    def stories(self, ids: Sequence[str]) -> list[Story]: ...


def clock(published: datetime | None, fetched: datetime | None, fallback: datetime) -> datetime:
    """An article's time on the stories' clock: the earlier of its published and fetched times (a date in the
    future is a feed's error), either one alone, else `fallback` (when it was loaded)."""
    known = [t for t in (published, fetched) if t is not None]
    return (min(known) if known else fallback).astimezone(UTC)


def order_key(item: StoryItem) -> tuple[datetime, str]:
    """The canonical order: earliest first, ties by article id."""
    return item.published, item.article_id


class StoryIndex:
    """The online clusterer's state: document frequencies, open stories and their postings."""

    def __init__(self, settings: StorySettings, *, docs: int = 0, backing: Backing | None = None) -> None:
        self.settings = settings
        self.docs = docs  # articles placed so far (the N of the IDF)
        self.backing = backing
        self.df: dict[str, int] = {}
        self.stories: dict[str, Story] = {}
        self.term_postings: dict[str, set[str]] = {}
        self.entity_postings: dict[str, set[str]] = {}
        self.dirty_df: set[str] = set()
        self.dirty_stories: set[str] = set()  # started or grown here: memory, not the backing, has them right
        self._counts: dict[str, Counter[str]] = {}
        self._stored: dict[tuple[str, str], Postings] = {}  # the backing's postings read so far
        # The earliest `since` an article of the prefetched batch asks for: postings of stories closed before it are
        # not read (no article of the batch can join them).
        self._floor: datetime | None = None

    def prefetch(self, items: Sequence[StoryItem], margin: int = 8) -> None:
        """Read at once what placing `items` will likely ask the backing: the document frequencies of their terms,
        and the postings of their entities and of the top terms each would query now (`margin` more than it
        queries, as frequencies move while the batch is placed). A key missed here is read when it is asked: this
        changes the cost, never the result."""
        memo: dict[str, str | None] = {}  # folded word -> term, for the whole batch
        for item in items:
            self._counts[item.article_id] = term_counts(item.title, item.text, self.settings.body_words, memo)
        if items:
            self._floor = days_before(min(item.published for item in items), self.settings.window_days)
        missing = sorted({t for c in self._counts.values() for t in c if t not in self.df})
        known = self.backing.df(missing) if self.backing and missing else {}
        for t in missing:
            self.df[t] = known.get(t, 0)
        vectors = {item.article_id: self.vector(item)[0] for item in items}
        terms = {t for item in items for t in self._query(vectors[item.article_id], self.settings.query_terms + margin)}
        self._read_postings(sorted(terms), sorted({e for item in items for e in item.entities}))
        if self.backing is None:
            return
        # The stories each article would score now, and the next ones (frequencies and stories move while the
        # batch is placed), read in one go: a story missed here costs a lookup of its own later.
        wanted: set[str] = set()
        for item in items:
            since = days_before(item.published, self.settings.window_days)
            wanted.update(self._ranked(self._query(vectors[item.article_id], self.settings.query_terms),
                                       sorted(set(item.entities)), since, 2 * self.settings.max_candidates))
        self._load(sorted(wanted))

    def count(self, items: Iterable[StoryItem]) -> None:
        """Add `items`' terms to the document frequencies without placing them: the earlier articles a deployed
        warehouse's `story_df` has counted, for an index started on a slice of the news (cluster_offline)."""
        for item in items:
            for t in term_counts(item.title, item.text, self.settings.body_words):
                self.df[t] = self.df.get(t, 0) + 1
            self.docs += 1

    def _load(self, ids: list[str]) -> None:
        missing = [sid for sid in ids if sid not in self.stories]
        if missing and self.backing is not None:
            for story in self.backing.stories(missing):
                self._post(story)

    def _read_postings(self, terms: list[str], entities: list[str]) -> None:
        terms = [t for t in terms if ("t", t) not in self._stored]
        entities = [e for e in entities if ("e", e) not in self._stored]
        if self.backing is None or not (terms or entities):
            return
        found = self.backing.postings(terms, entities, self._floor)
        for key in [("t", t) for t in terms] + [("e", e) for e in entities]:
            self._stored[key] = found.get(key, _NO_POSTINGS)

    @staticmethod
    def _query(vec: dict[str, int], n: int) -> list[str]:
        return [t for t, _ in sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

    def vector(self, item: StoryItem) -> tuple[dict[str, int], list[str]]:
        """The article's quantised TF-IDF vector (IDF as of the articles placed before it) and its distinct terms."""
        counts = self._counts.get(item.article_id) or term_counts(item.title, item.text, self.settings.body_words)
        terms = sorted(counts)
        missing = [t for t in terms if t not in self.df]
        if missing:
            known = self.backing.df(missing) if self.backing else {}
            for t in missing:
                self.df[t] = known.get(t, 0)
        raw = {t: (1.0 + math.log(counts[t])) * (math.log((self.docs + 1) / (self.df[t] + 1)) + 1.0) for t in terms}
        top = sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))[: self.settings.max_terms]
        norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
        vec = {t: q for t, w in top if (q := round(w / norm * _SCALE)) > 0}
        return vec, terms

    def _ranked(self, terms: list[str], entities: list[str], since: datetime, limit: int | None = None) -> list[str]:
        """The open stories sharing at least min_shared_keys of these keys, most first (at most max_candidates,
        ties by id as text). Stories started or grown in this index are counted from memory, the others from the
        backing's postings: the same ranking as with every story in memory."""
        mine = self.stories if self.backing is None else self.dirty_stories
        shared: Counter[str] = Counter()
        for postings, keys in ((self.term_postings, terms), (self.entity_postings, entities)):
            for key in keys:
                shared.update(sid for sid in postings.get(key, ()) if sid in mine and self.stories[sid].last >= since)
        if self.backing is not None:
            self._read_postings(terms, entities)
            shared.update(self._stored_shared(terms, entities, since, mine, limit or self.settings.max_candidates))
        ranked = sorted(((sid, n) for sid, n in shared.items() if n >= self.settings.min_shared_keys),
                        key=lambda r: (-r[1], r[0]))
        return [sid for sid, _ in ranked[: limit or self.settings.max_candidates]]

    def _stored_shared(self, terms: list[str], entities: list[str], since: datetime, mine: Iterable[str],
                       limit: int) -> dict[str, int]:
        """The stored open stories not in `mine` sharing at least min_shared_keys of these keys, with how many;
        only those that can rank in the first `limit` (whatever `mine` adds: they are disjoint)."""
        cut = -epoch_us(since)
        stored: Counter[int] = Counter()
        for key in [("t", t) for t in terms] + [("e", e) for e in entities]:
            sids, negative_lasts = self._stored[key]
            stored.update(sids[: bisect_right(negative_lasts, cut)])
        for sid in mine:  # counted from memory
            stored.pop(int(sid), None)
        least = self.settings.min_shared_keys
        shared = {sid: n for sid, n in stored.items() if n >= least}
        if len(shared) > limit:
            # Below the limit-th most shared count none can rank: at least `limit` stories share more. Only the
            # rest are turned into text (the ranking's ties go by id as text).
            least = sorted(shared.values(), reverse=True)[limit - 1]
        return {str(sid): n for sid, n in shared.items() if n >= least}

    def _candidates(self, terms: list[str], entities: list[str], since: datetime) -> list[str]:
        """_ranked, with every story in memory once this returns."""
        top = self._ranked(terms, entities, since)
        self._load(top)
        return top

    def _post(self, story: Story) -> None:
        self.stories[story.story_id] = story
        if self.backing is not None and story.story_id not in self.dirty_stories:
            return  # a stored story unchanged here is found through the backing's postings
        for t in story.terms:
            self.term_postings.setdefault(t, set()).add(story.story_id)
        for e in story.entities:
            self.entity_postings.setdefault(e, set()).add(story.story_id)

    def _unpost(self, story: Story) -> None:
        for t in story.terms:
            self.term_postings.get(t, set()).discard(story.story_id)
        for e in story.entities:
            self.entity_postings.get(e, set()).discard(story.story_id)

    def score(self, item: StoryItem, vec: dict[str, int], norm: float, story: Story) -> float:
        s = self.settings
        centroid = story.terms
        dot = sum(vec[t] * centroid[t] for t in vec.keys() & centroid.keys())  # integers: exact in any order
        cosine = dot / (norm * story.norm()) if dot else 0.0
        mine = set(item.entities)
        shared = len(mine & story.entities.keys())
        overlap = min(1.0, shared / max(s.entity_floor, min(len(mine), len(story.entities)))) if shared else 0.0
        cross = bool(item.language and story.languages and item.language not in story.languages)
        weight = s.cross_entity_weight if cross else s.entity_weight if item.text.strip() else s.title_entity_weight
        days = max(0.0, (item.published - story.last) / timedelta(days=1))
        return ((1 - weight) * cosine + weight * overlap) * 0.5 ** (days / s.decay)

    def place(self, item: StoryItem) -> Placement:
        """Put one original article in its story (an open one it matches best, else a new one)."""
        s = self.settings
        vec, terms = self.vector(item)
        query = self._query(vec, s.query_terms)
        entities = sorted(set(item.entities))
        since = days_before(item.published, s.window_days)
        if self._floor is not None and since < self._floor:  # not in the prefetched batch: read postings afresh
            self._floor = None
            self._stored.clear()
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        best: tuple[float, str] | None = None
        for sid in sorted(self._candidates(query, entities, since)):
            score = self.score(item, vec, norm, self.stories[sid])
            if score >= s.threshold and (best is None or score > best[0]):
                best = (score, sid)
        if best is None:
            story = Story(item.article_id, item.published, item.published, 0, {}, {}, {})
            placement = Placement(item.article_id, 0.0, True)
        else:
            story = self.stories[best[1]]
            placement = Placement(best[1], best[0], False)
            self._unpost(story)
        self._grow(story, item, vec)
        self._post(story)
        for t in terms:
            self.df[t] += 1
        self.dirty_df.update(terms)
        self.docs += 1
        return placement

    def _grow(self, story: Story, item: StoryItem, vec: dict[str, int]) -> None:
        s = self.settings
        summed = dict(story.terms)
        for t, w in vec.items():
            summed[t] = summed.get(t, 0) + w
        story.terms = dict(sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))[: s.centroid_terms])
        for e in set(item.entities):
            story.entities[e] = story.entities.get(e, 0) + 1
        if item.language:
            story.languages[item.language] = story.languages.get(item.language, 0) + 1
        story.first = min(story.first, item.published)
        story.last = max(story.last, item.published)
        story.size += 1
        story._norm = None
        self.dirty_stories.add(story.story_id)


def split_copies(items: Iterable[StoryItem]) -> tuple[list[StoryItem], list[StoryItem]]:
    """(originals in canonical order, copies whose original is among the items); a copy whose original is not
    there is clustered as an original."""
    items = list(items)
    ids = {i.article_id for i in items if i.copy_of is None}
    copies = [i for i in items if i.copy_of is not None and i.copy_of in ids]
    originals = [i for i in items if i.copy_of is None or i.copy_of not in ids]
    return sorted(originals, key=order_key), sorted(copies, key=order_key)


def cluster_offline(items: Sequence[StoryItem], settings: StorySettings = StorySettings(),
                    background: Iterable[StoryItem] = ()) -> dict[str, str]:
    """article_id -> story_id, running the same online algorithm the pipeline runs, in canonical order,
    with an in-memory candidate index. `background`: earlier articles, counted in the document frequencies and
    never placed, as a warehouse that ran before counts what it stored (a term common last week is common now)."""
    originals, copies = split_copies(items)
    index = StoryIndex(settings)
    index.count(background)
    out = {item.article_id: index.place(item).story_id for item in originals}
    for copy in copies:
        out[copy.article_id] = out[copy.copy_of]  # type: ignore[index]
    return out
