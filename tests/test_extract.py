"""Extraction on hand-written pages: the default pass, and each fallback pass when the default finds nothing."""

from __future__ import annotations

import json

from flows import extract
from flows.settings import ExtractSettings

PARAGRAPHS = [
    "The harbour authority of Port Alder confirmed on Tuesday that the northern breakwater will be rebuilt "
    "over the next three summers, after winter storms opened a gap of almost forty metres in the old wall.",
    "Engineers from the regional council said the new design raises the crest by two metres and adds a "
    "rock armour layer on the seaward side, which should halve the overtopping seen during the January gales.",
    "Fishing crews, who lost a week of landings when the inner basin silted up, welcomed the plan but asked "
    "that the works avoid the herring season, when the quay is busiest and the boats unload through the night.",
    "The council expects to publish the tender in the spring, and a public meeting on the timetable is "
    "planned for the first week of March in the old customs hall on Quay Street.",
]
URL = "http://127.0.0.1/news/breakwater"


def page(body: str, head: str = "<title>Breakwater to be rebuilt</title>") -> bytes:
    return f'<!doctype html><html lang="en"><head>{head}</head><body>{body}</body></html>'.encode()


def article(paragraphs: list[str]) -> str:
    return "<article><h1>Breakwater to be rebuilt</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</article>"


def test_default_pass_extracts_the_article() -> None:
    found = extract.extract(page(article(PARAGRAPHS)), URL, ExtractSettings())
    assert found is not None
    assert found.method == "default"
    assert "rock armour layer" in found.text and "customs hall" in found.text
    assert found.language == "en"


def test_nothing_to_extract_is_none() -> None:
    assert extract.extract(page("<div></div><script>var x = 1;</script>"), URL, ExtractSettings()) is None


def test_flatten_nested_only_when_a_document_is_nested() -> None:
    assert extract.flatten_nested(page(article(PARAGRAPHS))) is None
    nested = page("<div>" + "<html><head><title>x</title></head><body><p>inner</p></body></html>" + "</div>")
    flat = extract.flatten_nested(nested)
    assert flat is not None
    assert flat.count(b"<html") == 1 and b"<p>inner</p>" in flat and b"<title>x</title>" not in flat


def test_article_only_in_json_hydration_data_is_found() -> None:
    data = {"article": {"title": "Breakwater", "contentHtml": "".join(f"<p>{p}</p>" for p in PARAGRAPHS)}}
    body = "<div id='root'></div><script>window.__DATA__ = " + json.dumps(data) + ";</script>"
    found = extract.extract(page(body), URL, ExtractSettings())
    assert found is not None
    assert found.method == "embedded"
    assert "rock armour layer" in found.text and "customs hall" in found.text
    assert found.language == "en"


def test_embedded_html_ignores_a_single_paragraph() -> None:
    teaser = json.dumps({"teaser": "<p>" + PARAGRAPHS[0] + "</p>"})
    assert extract.embedded_html(page(f"<script>var x = {teaser};</script>")) is None


def test_the_longest_pass_wins_when_the_default_is_short() -> None:
    settings = ExtractSettings(min_text_chars=10_000)  # every pass counts as short: all are tried
    found = extract.extract(page(article(PARAGRAPHS)), URL, settings)
    assert found is not None
    assert "customs hall" in found.text


def test_extractor_options_record_the_settings() -> None:
    options = extract.extractor_options(ExtractSettings(favor_recall=True))
    assert options["favor_recall"] is True and options["with_metadata"] is True


def test_long_lists_are_dropped_short_ones_kept() -> None:
    from flows.extract import drop_link_lists

    text = ("First paragraph of the story.\n- point one\n- point two\nSecond paragraph.\n"
            "- Related: a\n- Related: b\n- Related: c\n- Related: d")
    assert drop_link_lists(text, 2) == "First paragraph of the story.\n- point one\n- point two\nSecond paragraph."
    assert drop_link_lists(text, 0) == text
    assert drop_link_lists("- a\n- b\n- c", 2) == "- a\n- b\n- c"  # nothing else: kept whole
