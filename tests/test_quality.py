"""Article quality flags (issue 22): hand-written pages imitating a paywalled article, a teaser, a consent
interstitial and ordinary free articles (tests/data/quality, ours); the flags never raise on odd input; and one
pass from a real loopback server through extraction, tagging, staging and the real loader into the warehouse,
its provenance view, `newsflow status` and the HTML report. Real DuckDB, real Parquet, real HTTP.

Covers: flows.text.quality
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.records import Document
from flows.core.sections import DedupSettings, ExtractSettings, FetchSettings
from flows.core.settings import Settings, WarehouseSettings
from flows.feeds.parse import parse_feed
from flows.ops import status
from flows.ops.localserver import LocalServer
from flows.run.documents import CONSENT_SKIP, apply_tags, build_docs, plan_tagging, signature_fields, tag_texts
from flows.text import extract, quality
from flows.warehouse import checks, reportpage, staging, store
from flows.warehouse.database import connect, migrate
from flows.warehouse.writer import load_batch

PAGES = Path(__file__).parent / "data" / "quality"
# page -> (access, is_teaser, is_consent_page)
EXPECTED = {
    "paywalled.html": ("paywalled", False, False),
    "teaser.html": ("paywalled", True, False),
    "consent.html": ("free", False, True),
    "free_cookies.html": ("free", False, False),
    "free_plain.html": ("free", False, False),
}
ARTICLE = " ".join(f"Sentence {i} of the report on the harbour wall, the winter storms and the fish market."
                   for i in range(60))


def _flags(name: str) -> quality.Quality:
    page = (PAGES / name).read_bytes()
    found = extract.extract(page, f"https://news.example/{name}", ExtractSettings())
    assert found is not None, name
    return quality.assess(page, found.text, found.title)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_hand_written_page_gets_its_flags(name: str) -> None:
    q = _flags(name)
    assert (q.access, q.is_teaser, q.is_consent_page) == EXPECTED[name], q.why


def test_the_teaser_is_found_by_its_declared_length_and_by_its_prompt() -> None:
    q = _flags("teaser.html")
    assert "teaser:85/1200words" in q.why and "prompt" in q.why
    page = (PAGES / "teaser.html").read_text()
    # Without the declared length, the prompt after the text still makes it a teaser; without both, it is none.
    no_count = page.replace('"wordCount": 1200,', "")
    text = extract.extract(no_count.encode(), "https://news.example/t", ExtractSettings())
    assert text is not None and quality.assess(no_count, text.text).is_teaser
    neither = no_count.replace("<p>Subscribe to read more.</p>", "")
    assert not quality.assess(neither, text.text).is_teaser


def test_structured_data_is_read_from_json_ld_microdata_and_meta() -> None:
    def declared(page: str) -> quality.Declared:
        return quality.declared_of(page)

    graph = {"@graph": [{"@type": "WebSite"}, {"@type": "NewsArticle", "isAccessibleForFree": "False",
                                               "wordCount": "900", "articleBody": "one two three"}]}
    got = declared(f'<script type="application/ld+json">{json.dumps(graph)}</script>')
    assert (got.accessible, got.word_count, got.body_words) == (False, 900, 3)
    # A paywalled part wins over the article's own `true`, in either order.
    part = {"@type": "NewsArticle", "isAccessibleForFree": True,
            "hasPart": {"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": ".paid"}}
    assert declared(f'<script type="application/ld+json">{json.dumps(part)}</script>').accessible is False
    assert declared('<meta itemprop="isAccessibleForFree" content="false">').accessible is False
    assert declared('<div content="True" itemprop="isAccessibleForFree"></div>').accessible is True
    assert declared('<script type="application/ld+json">{not json</script>') == quality.Declared()
    tier = '<meta property="article:content_tier" content="locked">'
    assert quality.assess(tier, ARTICLE).access == "paywalled"
    assert quality.assess('<div class="story paywall"></div>', ARTICLE).access == "paywalled"
    assert quality.assess('<div class="paywall-free-story"></div>', ARTICLE).access == "free"
    assert quality.assess('<p class="paywall">A paragraph.</p><article class="card paywall">', ARTICLE).access == "free"


def test_a_word_count_that_is_the_length_in_characters_is_not_a_declared_length() -> None:
    ld = {"@type": "NewsArticle", "wordCount": len(ARTICLE)}  # publishers do put characters there
    page = f'<script type="application/ld+json">{json.dumps(ld)}</script>'
    assert not quality.assess(page, ARTICLE).is_teaser
    ld["wordCount"] = 3 * len(ARTICLE)  # far past both its words and its characters
    assert quality.assess(f'<script type="application/ld+json">{json.dumps(ld)}</script>', ARTICLE).is_teaser
    ld["isAccessibleForFree"] = True  # declared free: a short body is an extraction loss, not a teaser
    assert not quality.assess(f'<script type="application/ld+json">{json.dumps(ld)}</script>', ARTICLE).is_teaser


def test_a_prompt_inside_the_text_or_the_page_chrome_is_not_a_wall() -> None:
    middle = ARTICLE[:400] + "\nSubscribe to read more of our coverage in the weekend edition.\n" + ARTICLE
    assert quality.assess(None, middle) == quality.Quality()
    page = f"<nav>Already a subscriber? Log in</nav><article><p>{ARTICLE}</p></article><footer>About us</footer>"
    assert quality.assess(page, ARTICLE).access == "free"
    walled = page.replace("<footer>", "<div>Subscribe to continue reading</div><footer>")
    # Paywalled, but the whole text is on the page behind the wall: not a teaser.
    assert quality.assess(walled, ARTICLE) == quality.Quality("paywalled", False, False, "prompt")
    assert quality.assess(walled, ARTICLE[:500]).is_teaser  # a short text behind a wall is what it let through


def test_a_long_article_about_consent_is_not_a_consent_page() -> None:
    lines = "\n".join(["You can click Accept all to consent, Reject all to refuse, or read our privacy policy."] * 60)
    assert quality.is_consent(lines[:800])
    assert not quality.is_consent(lines)  # past CONSENT_MAX_WORDS it is an article, however worded
    assert not quality.is_consent("We use cookies.")  # one phrase is a footer line, not a notice


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                            lambda kids: st.lists(kids, max_size=4)
                            | st.dictionaries(st.sampled_from(["isAccessibleForFree", "wordCount", "articleBody",
                                                               "@graph", "hasPart", "x"]), kids, max_size=4),
                            max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=st.one_of(st.none(), st.binary(max_size=2000), st.text(max_size=2000),
                      _json_values.map(lambda v: f'<script type="application/ld+json">{json.dumps(v)}</script>')),
       text=st.text(max_size=2000), title=st.none() | st.text(max_size=100))
def test_the_flags_never_raise_on_arbitrary_input(page: bytes | str | None, text: str, title: str | None) -> None:
    q = quality.assess(page, text, title)
    assert q.access in (quality.FREE, quality.PAYWALLED) and q.why != "error"
    assert isinstance(q.is_teaser, bool) and isinstance(q.is_consent_page, bool)


# ---------------------------------------------------------------- through the real loader

@pytest.fixture
def site() -> Iterator[LocalServer]:
    with LocalServer(PAGES) as server:
        yield server


def test_flags_travel_from_the_page_to_the_warehouse_the_view_the_status_and_the_report(
        site: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.run.pages import download

    wh = WarehouseSettings(path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging", keep_raw_html=False)
    cfg = Settings(fetch=FetchSettings(allowed_networks=("127.0.0.1/32",), respect_robots=False, min_host_delay=0),
                   warehouse=wh)
    feed = parse_feed(site.render((PAGES / "feed.xml").read_bytes(), ".xml"), site.url("/feed.xml"), "quality")
    built = build_docs(list(download(cfg, feed.entries)), cfg)
    docs = [d for d, _page in built if d is not None]
    assert len(docs) == 5
    for chunk in plan_tagging(docs, cfg):
        apply_tags(chunk, tag_texts([(d.text, name) for d, name in chunk], cfg))
    batch = staging.Batch("20261130T000000-q-0001", "run-q")
    batch.add("docs", *docs)
    batch.add("page_fetches", *[dict(page, run_id="run-q") for _d, page in built])
    assert store.store(cfg, batch) is not None  # staged as Parquet, loaded by the loader

    with connect(wh, read_only=True) as conn:
        rows = conn.execute("select link, access, is_teaser, is_consent_page, ner_skip_reason, n_samples, "
                            "index_seq from articles").fetchall()
        view = dict((r[0].rsplit("/", 1)[1], r[1:]) for r in conn.execute(
            "select final_url, access, is_teaser, is_consent_page from article_provenance").fetchall())
        lsh = conn.execute("select count(*) from lsh_buckets b join articles a using (article_id) "
                           "where a.is_consent_page").fetchone()
        failed = [r for r in checks.run_checks(conn, staging_dir=wh.staging_dir, dedup=cfg.dedup) if r.failed]
        page = reportpage.render(conn)
    by_page = {r[0].rsplit("/", 1)[1]: r[1:] for r in rows}
    assert {k: v[:3] for k, v in by_page.items()} == EXPECTED
    assert view == EXPECTED
    consent = by_page["consent.html"]
    assert consent[3:] == (CONSENT_SKIP, 0, None) and lsh == (0,)  # not tagged, not indexed
    assert all(v[3] != CONSENT_SKIP and v[4] > 0 for k, v in by_page.items() if k != "consent.html")
    assert not failed, failed  # tagged-or-explained and the index invariants hold with consent pages in
    assert "Paywalls and teasers" in page and "<td>quality</td>" in page

    status.show(Settings(warehouse=wh))
    out = capsys.readouterr().out
    assert "Articles stored in the last 7 days: 5; paywalled 2, teasers 1, consent pages 1" in out

    # A later ordinary article with the consent page's very text is not filed as its copy.
    text = next(d.text for d in docs if d.is_consent_page)
    later = staging.Batch("20261130T000001-q-0002", "run-q")
    later.add("docs", Document(url="https://other.example/a", text=text, body_source="extracted", feed="quality",
                               access="free", is_teaser=False, is_consent_page=False, ner_skip_reason="test",
                               **signature_fields(text, DedupSettings())))
    result = store.store(cfg, later)
    assert result is not None and (result.new, result.exact, result.near) == (1, 0, 0)


def test_a_batch_staged_before_the_flags_loads_them_as_not_assessed(tmp_path: Path) -> None:
    text = ARTICLE
    doc = Document(url="https://old.example/1", text=text, body_source="extracted", feed="f",
                   published_at=datetime(2026, 11, 1, tzinfo=UTC), ner_skip_reason="test",
                   **signature_fields(text, DedupSettings()))
    row = {k: v for k, v in vars(doc).items() if k not in ("access", "is_teaser", "is_consent_page")}
    path = tmp_path / "staging" / "20261101T000000-old-0001"
    path.mkdir(parents=True)
    (path / "run_id").write_text("run-old")
    (path / "schema_version").write_text("2")
    pq.write_table(pa.Table.from_pylist([row]), path / "docs.parquet")
    batch = staging.read(path)
    assert batch.schema_version == 2 and batch.docs[0].access is None and batch.docs[0].is_consent_page is None
    wh = WarehouseSettings(path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging")
    with connect(wh) as conn:
        migrate(conn)
        assert load_batch(conn, batch, DedupSettings()).new == 1
        assert conn.execute("select access, is_teaser, is_consent_page, n_samples > 0 from articles").fetchall() \
            == [(None, None, None, True)]
