"""The stories a checkout's code gives the bench's articles, as one digest: two checkouts that print the same digest
place the same articles in the same stories (issue 25, docs/stories.md "Cost").

    python -m benchmarks.stories_digest 10000       # in each checkout (git archive <commit> | tar -x -C <dir>)

Six deterministic batches of 64 new articles (bench_stories' recipe, the live stories drawn by a seeded generator)
placed on a fresh fill of that many stored articles; the digest covers the placements (story, similarity, order),
the touched `stories` rows, the counters and the document frequencies. Reads `story_live` before and after
migration 0014 (lists or strings), so code from before it compares too.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks import bench_stories as bench
from flows.text.stories import StoryItem
from flows.warehouse import database, storystore

NEW = 10**12  # the new articles' ids start here


def new_items(conn: duckdb.DuckDBPyConnection, stored: int, start: int, rng: random.Random, live: list[int]
              ) -> list[StoryItem]:
    """bench_stories.new_items with the live stories given, reading either shape of story_live."""
    vocab = bench.vocabulary(stored)
    items = []
    for k in range(bench.BATCH):
        words = [bench._zipf_word(rng, vocab) for _ in range(bench.WORDS)]
        entities: tuple[str, ...] = (f"Nobody {start + k}",)
        if k % 2 == 0:
            story = rng.choice(live)
            terms, names = conn.execute("select terms, entities from story_live where story_id = ?",
                                        [story]).fetchone()
            terms = terms.split() if isinstance(terms, str) else terms
            names = list(json.loads(names)) if isinstance(names, str) else names
            words = terms[:40] + terms[:40] + words
            entities = tuple(names)
        rng.shuffle(words)
        items.append(StoryItem(str(NEW + start + k), " ".join(words[:8]), " ".join(words),
                               bench.END + timedelta(seconds=start + k), f"outlet{k % 50}", "en", entities))
    return items


def digest(stored: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="stories-digest-") as tmp, \
            duckdb.connect(str(Path(tmp) / "s.duckdb")) as conn:
        database.migrate(conn)
        bench.fill(conn, stored)
        rng = random.Random(7)
        for k in range(6):
            ids = [r[0] for r in conn.execute("select story_id from story_live order by story_id").fetchall()]
            items = new_items(conn, stored, k * bench.BATCH, rng, rng.sample(ids, bench.BATCH))
            conn.execute("begin transaction")
            storystore.place(conn, items, {i.article_id: "u" for i in items}, bench.SETTINGS, bench.END, "bench")
            conn.execute("commit")
        placed = conn.execute("select article_id, story_id, similarity, seq from story_articles "
                              "where article_id >= $new order by article_id", {"new": NEW}).fetchall()
        stories = conn.execute("""
            select story_id, first_seen, last_seen, articles, originals, outlets, languages, top_entities
            from stories where story_id in (select story_id from story_articles where article_id >= $new)
            order by story_id""", {"new": NEW}).fetchall()
        state = conn.execute("select * from story_state").fetchall()
        df = conn.execute("select sum(df), count(*) from story_df").fetchall()
        live = conn.execute("select count(*) from story_live").fetchone()[0]
    return {"placed": len(placed), "joined": sum(1 for a, s, _, _ in placed if s != a), "stories": len(stories),
            "live": live, "digest": hashlib.sha256(repr((placed, stories, state, df)).encode()).hexdigest()[:16]}


if __name__ == "__main__":
    print(json.dumps(digest(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)))
