"""A large labelled dedup evaluation set, generated deterministically from real news stories.

Base stories: the fundus pages (expected bodies, several languages; pages written without spaces between words are
left out, since word-level copy editing means nothing there), the demo stories and the seed. For each base story,
copies of every kind outlets produce (see KINDS), among them the original laid out anew and copies changed every way
at once, as they are and in six layouts (benchmarks/layouts.py); as negatives, different stories about the same
event, with the same people or sharing a long quote, and an outlet's template pages (the same boilerplate around
different short bodies). Negative bodies come from fundus stories reserved as filler, each paragraph used once, so
no negative is accidentally a copy of anything.

The split is by a hash of the base story id (a third held out); outlets, their boilerplate lines and filler text are
split the same way, so the held-out split shares nothing with the one thresholds are chosen on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import layouts
from benchmarks.corpora import fundus_pages
from benchmarks.layouts import copy_edit, join, words
from flows.core.settings import PROJECT_ROOT

SPLITS = ("tuning", "heldout")
KINDS = (
    "exact_normalised", "abridged", "merged", "copy_edited", "lede_headline", "boilerplate_added",
    "boilerplate_removed", "reordered", "rss_summary", "comments_kept", "related_links", "demo_syndication",
    "exact_relaid", "combined", *(f"combined_{name}" for name in layouts.LAYOUTS),
)
NEGATIVES = ("neg_same_event", "neg_same_people", "neg_shared_quote", "neg_template")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_NAME = re.compile(r"\b[A-ZÄÖÜÉ][\w’'-]+(?:\s+[A-ZÄÖÜÉ][\w’'-]+)+")
_FILLER_SHARE = 4  # one fundus story in four is filler for negatives, never a base


@dataclass(frozen=True)
class Story:
    id: str
    title: str
    lang: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Doc:
    url: str
    story: str  # the true cluster: the base story id, or the document's own id for a negative
    base: str  # the base story it was made from or against
    kind: str  # original | one of KINDS | one of NEGATIVES
    split: str
    outlet: str
    title: str
    text: str
    order: float = field(default=0.0, compare=False)  # arrival time: originals before their own copies


def split_of(story_id: str) -> str:
    """Held out when the id's hash is 0 mod 3: decided by the id alone, stable across runs and code changes."""
    return "heldout" if hashlib.blake2b(story_id.encode(), digest_size=4).digest()[0] % 3 == 0 else "tuning"


def _is_spaced(text: str) -> bool:
    """Whether words are separated by spaces (not Japanese, Chinese, Thai ...)."""
    tokens = text.split()
    return bool(tokens) and len(text) / len(tokens) < 12


def _demo_stories() -> tuple[list[Story], list[tuple[str, str]], list[tuple[str, str]]]:
    """Demo pages as (stories, real syndicated copies of the seed, same-topic different stories)."""
    from flows.core.sections import ExtractSettings
    from flows.text import extract

    root = PROJECT_ROOT / "flows" / "demo_data" / "pages"
    copies = {"harbour-herald/xi-moscow-visit-putin-wang-yi", "northgate-courier/xi-jinping-plans-moscow-trip",
              "valley-ledger/putin-receives-wang-yi-peace-initiative",
              "meridian-post/xi-jinping-moscow-putin-wang-yi-kremlin",
              "meridian-sunday/xi-jinping-moscow-putin-wang-yi-kremlin"}
    same_topic = {"northgate-courier/analysis-china-russia-partnership-limits",
                  "valley-ledger/kremlin-talks-wang-yi-warm-words",
                  "meridian-sunday/western-diplomats-cool-on-china-peace-plan"}
    stories, syndicated, negatives = [], [], []
    for path in sorted(root.glob("*/*.html")):
        key = f"{path.parent.name}/{path.stem}"
        html = path.read_bytes().replace(b"{{BASE}}", b"http://127.0.0.1:8765")
        found = extract.extract(html, f"http://127.0.0.1:8765/pages/{key}.html", ExtractSettings())
        if found is None:
            continue
        if key in copies:
            syndicated.append((key, found.text))
        elif key in same_topic:
            negatives.append((key, found.text))
        else:
            stories.append(Story(f"demo/{key}", found.title or key, "en", _paragraphs(found.text)))
    return stories, syndicated, negatives


def _seed_story() -> Story:
    path = sorted((PROJECT_ROOT / "seeds").glob("*.txt"))[0]
    raw = path.read_text(encoding="utf-8").split(None, 2)[2]  # drop `date YYYY-MM-DD`
    paras = _paragraphs(raw)
    return Story(f"seed/{path.stem}", paras[0][:120], "en", paras)


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.splitlines() if p.strip())


def sources() -> tuple[list[Story], list[Story], list[tuple[str, str]], list[tuple[str, str]]]:
    """(base stories, filler stories, demo seed copies, demo same-topic stories)."""
    bases, fillers, seen = [], [], set()
    for page in fundus_pages():
        url = page.url.split("?")[0]
        if url in seen or not _is_spaced(page.body):
            continue
        seen.add(url)
        story = Story(f"fundus/{page.id}", page.title, page.lang or "und", _paragraphs(page.body))
        if len(story.paragraphs) < 3:
            continue
        h = hashlib.blake2b(story.id.encode(), digest_size=4).digest()[1]
        (fillers if h % _FILLER_SHARE == 0 else bases).append(story)
    demo, syndicated, same_topic = _demo_stories()
    return [_seed_story(), *demo, *bases], fillers, syndicated, same_topic


# Outlet boilerplate. Each line pool is cut in two (even / odd lines): tuning outlets draw from one half,
# held-out outlets from the other.
_OUTLETS = ("Harbour Herald", "Northgate Courier", "Valley Ledger", "Meridian Post", "Coastline Daily",
            "Riverside Tribune", "Summit Observer", "Lakeshore Gazette", "Ironbridge Times", "Pinewood Chronicle",
            "Eastgate Journal", "Redcliff Standard", "Bergblick Zeitung", "Rheinufer Anzeiger", "Nordstern Kurier",
            "Talpost Rundschau")
_BOILER = {
    "en": (
        "Sign up for the {o} newsletter and get the day's most important stories in your inbox every morning.",
        "Home | World | Politics | Business | Sport | Culture | Opinion",
        "© {y} {o}. All rights reserved.",
        "Share this article",
        "Advertisement",
        "Follow {o} on Facebook, X and Instagram for the latest updates.",
        "Support independent journalism: become a member of {o} today for as little as 5 a month.",
        "We use cookies to improve your experience on our site. By continuing to browse you agree to our use "
        "of cookies.",
        "Most read",
        "This article was first published by {o} and is republished here with permission.",
        "Got a news tip? Contact the {o} newsroom by email or through our secure messaging service.",
        "Listen to this article",
        "Reporting by the {o} news desk; editing by the {o} night team.",
        "Comments are closed for this article.",
    ),
    "de": (
        "Melden Sie sich für den {o}-Newsletter an und erhalten Sie jeden Morgen die wichtigsten Nachrichten.",
        "Startseite | Politik | Wirtschaft | Sport | Kultur | Meinung",
        "© {y} {o}. Alle Rechte vorbehalten.",
        "Artikel teilen",
        "Anzeige",
        "Folgen Sie {o} auf Facebook, X und Instagram, um nichts zu verpassen.",
        "Unabhängiger Journalismus braucht Unterstützung: Werden Sie jetzt Mitglied bei {o}.",
        "Wir verwenden Cookies, um Ihnen ein besseres Nutzungserlebnis zu bieten. Mit der Nutzung der Seite "
        "stimmen Sie dem zu.",
        "Meistgelesen",
        "Dieser Artikel erschien zuerst bei {o} und wird mit freundlicher Genehmigung veröffentlicht.",
        "Haben Sie einen Hinweis für uns? Schreiben Sie der {o}-Redaktion eine E-Mail.",
        "Artikel vorlesen lassen",
        "Mit Material der Nachrichtenagenturen; redigiert von der {o}-Nachtredaktion.",
        "Die Kommentarfunktion für diesen Artikel ist geschlossen.",
    ),
}
_COMMENT_META = ("{u} · {n} hours ago", "Reply", "{n} likes", "{u} wrote:", "Report")
_USERS = ("kestrel_77", "mjb1984", "Anna K.", "northern_light", "oldhand", "P. Varga", "quietreader", "tomasz_w")


@dataclass
class Outlet:
    name: str
    lang: str
    header: list[str]
    footer: list[str]


def _outlets(split: str, rng: random.Random) -> list[Outlet]:
    half = 0 if split == "tuning" else 1
    out = []
    for i, name in enumerate(_OUTLETS):
        if i % 2 != half:
            continue
        lang = "de" if i >= 12 else "en"
        pool = [line for j, line in enumerate(_BOILER[lang]) if j % 2 == half]
        pool = [line.format(o=name, y=2020 + i % 6) for line in pool]
        rng.shuffle(pool)
        cut = rng.randint(1, 3)
        out.append(Outlet(name, lang, pool[:cut], pool[cut:cut + rng.randint(2, 4)]))
    return out


class Filler:
    """Paragraphs of the filler stories of one split, each handed out once."""

    def __init__(self, stories: list[Story], rng: random.Random) -> None:
        self.paras = [p for s in stories for p in s.paragraphs if len(p.split()) >= 15]
        rng.shuffle(self.paras)
        self.sentences: list[str] = []

    def take(self, n: int) -> list[str]:
        out, self.paras = self.paras[:n], self.paras[n:]
        return out

    def sentence(self) -> str:
        while not self.sentences and self.paras:
            self.sentences = [s for s in _SENTENCE.split(self.paras.pop()) if len(s.split()) >= 8]
        return self.sentences.pop() if self.sentences else ""


def _sentences(text: str) -> list[str]:
    """The text's sentences, a fragment of under four words (a dateline, "Berlin.") kept with the next one."""
    out: list[str] = []
    carry = ""
    for s in _SENTENCE.split(text):
        carry = f"{carry} {s}".strip()
        if len(carry.split()) >= 4:
            out.append(carry)
            carry = ""
    if carry and out:
        out[-1] = f"{out[-1]} {carry}"
    elif carry:
        out.append(carry)
    return out


def _story_docs(story: Story, split: str, others: list[Story], outlets: list[Outlet], filler: Filler,
                rng: random.Random, t0: float) -> Iterator[Doc]:
    paras = list(story.paragraphs)
    vocab = words(paras)
    origin = rng.choice(outlets)
    with_boiler = rng.random() < 0.5
    original = join(origin.header + paras + origin.footer) if with_boiler else join(paras)

    def doc(kind: str, text: str, outlet: Outlet | None = None, title: str | None = None) -> Doc:
        outlet = outlet or rng.choice(outlets)
        return Doc(f"https://{outlet.name.lower().replace(' ', '-')}.example/{story.id}/{kind}", story.id,
                   story.id, kind, split, outlet.name, title or story.title, text,
                   t0 + (0.0 if kind == "original" else rng.expovariate(1 / 50)))

    def light(ps: list[str]) -> list[str]:
        return copy_edit(ps, rng.uniform(0.0, 0.02), rng, vocab)

    yield doc("original", original, origin)
    # Identical after normalisation: case, punctuation and line breaks change, the words do not.
    text = "\n\n".join(paras).replace("’", "'").replace("“", '"').replace("”", '"').replace(", ", " , ")
    yield doc("exact_normalised", text[:200].upper() + text[200:])
    n = len(paras)
    keep = max(1, round(n * rng.uniform(0.4, 0.7)))
    kept = paras[:keep] if rng.random() < 0.5 else [paras[i] for i in sorted(rng.sample(range(n), keep))]
    yield doc("abridged", join(light(kept)))
    # Merged: most of this story, then (or within it) paragraphs of another, at most 30% of that one's words
    # and 20-40% of what is kept of this one, so the copy belongs to this story and not to the other.
    other = rng.choice([s for s in others if s.id != story.id])
    head = paras[:max(2, round(n * rng.uniform(0.55, 0.8)))]
    budget = min(0.3 * len(words(other.paragraphs)), rng.uniform(0.2, 0.4) * len(words(head)))
    tail, used = [], 0
    for p in other.paragraphs[rng.randrange(len(other.paragraphs)):]:
        if used + len(p.split()) > budget:
            break
        tail.append(p)
        used += len(p.split())
    if not tail:  # the other story's paragraphs are long: take sentences instead
        for s in _SENTENCE.split(" ".join(other.paragraphs)):
            if used + len(s.split()) > budget:
                break
            tail.append(s)
            used += len(s.split())
    merged = head + tail if rng.random() < 0.5 else head[:1] + tail + head[1:]
    yield doc("merged", join(light(merged)))
    yield doc("copy_edited", join(copy_edit(paras, rng.uniform(0.05, 0.15), rng, vocab)))
    headline = " ".join(copy_edit([story.title], 0.5, rng, vocab))
    lede = copy_edit(paras[:1], 0.5, rng, vocab)
    yield doc("lede_headline", join([headline, *lede, *light(paras[1:])]), title=headline)
    outlet = rng.choice(outlets)
    related = [f"Read more: {s.title}" for s in rng.sample(others, 2)]
    yield doc("boilerplate_added", join(outlet.header + light(paras[:n // 2]) + related[:1]
                                         + light(paras[n // 2:]) + outlet.footer), outlet)
    if with_boiler:
        yield doc("boilerplate_removed", join(light(paras)))
    order = paras[:]
    while order == paras:
        rng.shuffle(order)
    yield doc("reordered", join(light(order)))
    sentences = _sentences(" ".join(paras[:2]))
    summary = " ".join(sentences[:rng.randint(1, 3)])
    if rng.random() < 0.3:
        summary = " ".join(summary.split()[:rng.randint(25, 45)]) + " …"
    if rng.random() < 0.5:  # a sub-editor's touch: a word or two changed
        summary = copy_edit([summary], rng.uniform(0.02, 0.06), rng, vocab)[0]
    yield doc("rss_summary", summary)
    comments = ["Comments"]
    for _ in range(rng.randint(3, 6)):
        meta = rng.choice(_COMMENT_META).format(u=rng.choice(_USERS), n=rng.randint(1, 40))
        comments += [meta, filler.sentence()]
    yield doc("comments_kept", join(light(paras) + comments))
    links = ["Related", *(s.title for s in rng.sample(others, rng.randint(4, 8)))]
    yield doc("related_links", join(light(paras) + links))


def _layout_docs(story: Story, split: str, outlets: list[Outlet], t0: float) -> Iterator[Doc]:
    """The original laid out anew (an exact copy), and copies changed every way at once (layouts.combined), as
    they are and in each layout. From the story's own generator, so the other kinds' documents stay as they were."""
    rng = random.Random(f"newsflow-dedupset-layouts-{story.id}")
    paras = list(story.paragraphs)

    def doc(kind: str, text: str, outlet: Outlet, title: str) -> Doc:
        return Doc(f"https://{outlet.name.lower().replace(' ', '-')}.example/{story.id}/{kind}", story.id,
                   story.id, kind, split, outlet.name, title, text, t0 + rng.expovariate(1 / 50))

    relaid = layouts.LAYOUTS[rng.choice(sorted(layouts.LAYOUTS))]
    yield doc("exact_relaid", relaid(join(paras), rng), rng.choice(outlets), story.title)
    for name in ("", *layouts.LAYOUTS):
        outlet = rng.choice(outlets)
        headline, text = layouts.combined(paras, story.title, (outlet.header, outlet.footer), rng)
        yield doc(f"combined_{name}".rstrip("_"), layouts.LAYOUTS[name](text, rng) if name else text, outlet,
                  headline)


def _negatives(story: Story, split: str, outlets: list[Outlet], filler: Filler, rng: random.Random,
               ) -> Iterator[Doc]:
    """Different stories about the same event, with the same people, and sharing a long quote."""
    paras = list(story.paragraphs)
    names = list(dict.fromkeys(_NAME.findall(" ".join(paras))))
    body = filler.take(rng.randint(3, 4))
    if len(body) < 3:
        return

    def with_names(ps: list[str]) -> list[str]:
        if not names:
            return ps
        return [_NAME.sub(lambda _m: rng.choice(names[:6]), p) for p in ps]

    def doc(kind: str, lines: list[str]) -> Doc:
        outlet = rng.choice(outlets)
        url = f"https://{outlet.name.lower().replace(' ', '-')}.example/{story.id}/{kind}"
        return Doc(url, url, story.id, kind, split, outlet.name, kind, join(lines), rng.uniform(0, 1000))

    choice = rng.randrange(3)
    if choice == 0:
        # Same event: the same names and places, the headline's words, a few words of the lede.
        lede = paras[0].split()
        yield doc("neg_same_event", [story.title, *with_names(body[:1]), " ".join(lede[:4]) + " said officials.",
                                     *with_names(body[1:])])
    elif choice == 1:
        yield doc("neg_same_people", with_names(body))
    else:
        quotes = [s for p in paras[2:] for s in _SENTENCE.split(p) if len(s.split()) >= 20]  # not the lede
        if quotes:
            quote = rng.choice(quotes)
            yield doc("neg_shared_quote", [*body[:2], f"“{quote}”", *body[2:]])


def _templates(split: str, outlets: list[Outlet], filler: Filler, rng: random.Random) -> Iterator[Doc]:
    """An outlet's template pages: the same header and footer around different short bodies."""
    for outlet in outlets:
        for k in range(6):
            body = [filler.sentence() for _ in range(rng.randint(1, 3))]
            url = f"https://{outlet.name.lower().replace(' ', '-')}.example/template/{k}"
            yield Doc(url, url, f"template/{outlet.name}", "neg_template", split, outlet.name, f"{outlet.name} {k}",
                      join(outlet.header + body + outlet.footer), rng.uniform(0, 1000))


def generate(split: str, *, limit: int | None = None) -> list[Doc]:
    """Every document of one split, in arrival order. `limit` caps the base stories (for tests)."""
    bases, fillers, syndicated, same_topic = sources()
    rng = random.Random(f"newsflow-dedupset-{split}")
    stories = [s for s in bases if split_of(s.id) == split][:limit]
    filler = Filler([s for s in fillers if split_of(s.id) == split], rng)
    outlets = _outlets(split, rng)
    docs: list[Doc] = list(_templates(split, outlets, filler, rng))  # first: they need little filler
    seed = _seed_story().id
    for story in stories:
        t0 = 0.0 if story.id == seed else rng.uniform(0, 1000)  # the demo copies of the seed follow it
        docs += _story_docs(story, split, stories, outlets, filler, rng, t0)
        docs += _layout_docs(story, split, outlets, t0)
        docs += _negatives(story, split, outlets, filler, rng)
    if seed in {s.id for s in stories}:
        for key, text in syndicated:
            docs.append(Doc(f"https://demo.example/{key}", seed, seed, "demo_syndication", split, key.split("/")[0],
                            key, text, rng.uniform(1, 100)))
        for key, text in same_topic:
            url = f"https://demo.example/{key}"
            docs.append(Doc(url, url, seed, "neg_same_event", split, key.split("/")[0], key, text,
                            rng.uniform(1, 100)))
    return sorted(docs, key=lambda d: (d.order, d.url))


def write(folder: Path, split: str) -> None:
    """The split as text files, to read the generated documents (never committed: they quote third-party text)."""
    for d in generate(split):
        path = folder / split / d.kind / (hashlib.blake2b(d.url.encode(), digest_size=6).hexdigest() + ".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{d.url}\nstory: {d.story}\n\n{d.text}\n")
