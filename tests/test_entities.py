"""Entities: the real spaCy pipeline on the real seed, and the per-article name normalisation."""

from __future__ import annotations

import pytest

from flows import entities
from flows.seeds import read_seeds
from flows.settings import PROJECT_ROOT, EntitySettings

SETTINGS = EntitySettings()


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
