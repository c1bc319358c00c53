"""Seed corpus: the file format, and idempotent loading into a real DuckDB file.

Covers: flows.text.seeds, flows.warehouse.runstate
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from conftest import write_config

from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.run import documents, workers
from flows.text.seeds import SeedFormatError, parse_seed, read_seeds
from flows.warehouse import runstate, store
from flows.warehouse.database import connect
from flows.warehouse.staging import Batch


def test_the_real_seed_parses() -> None:
    seeds, errors = read_seeds(PROJECT_ROOT / "seeds")
    assert errors == []
    [seed] = [s for s in seeds if s.name == "000_e64399ec47401f51.txt"]
    assert seed.published == date(2023, 2, 22)
    assert seed.text.startswith("Chinese President Xi Jinping")
    assert seed.url == "seed:000_e64399ec47401f51.txt"


@pytest.mark.parametrize("raw", ["2023-02-22 text", "date 2023-13-40 text", "date 2023-02-22   "])
def test_malformed_seed_is_named(raw: str) -> None:
    with pytest.raises(SeedFormatError, match=r"x\.txt"):
        parse_seed("x.txt", raw)


def test_a_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("date 2024-01-01 Fine text.")
    (tmp_path / "b.txt").write_text("no header here")
    (tmp_path / "c.txt").write_bytes(b"date 2024-01-01 \xff\xfe")
    seeds, errors = read_seeds(tmp_path)
    assert [s.name for s in seeds] == ["a.txt"]
    assert len(errors) == 2 and str(errors[0]).startswith("b.txt")


def _load(settings: Settings) -> int:
    """What the reload-seeds flow does, without Prefect: returns how many seed files were (re)loaded."""
    seeds, _ = runstate.seeds_to_load(settings)
    if seeds:
        docs = [documents.seed_doc(s, settings) for s in seeds]
        documents.tag_documents(workers.InlineExecutor(), docs, settings)
        batch = Batch(f"seeds-{len(list(settings.warehouse.staging_dir.glob('*')))}", "run")
        batch.add("docs", *docs)
        assert store.store(settings, batch) is not None
    return len(seeds)


def _counts(settings: Settings) -> tuple[int, ...]:
    with connect(settings.warehouse, read_only=True) as conn:
        return tuple(conn.execute(f"select count(*) from {t}").fetchone()[0]
                     for t in ("articles", "article_entities", "lsh_buckets", "shingle_samples"))


def test_seed_loading_is_idempotent_and_reloads_changed_files(tmp_path: Path) -> None:
    seeds_dir = tmp_path / "seeds"
    shutil.copytree(PROJECT_ROOT / "seeds", seeds_dir)
    (seeds_dir / "001_other.txt").write_text(
        "date 2024-05-01 The Nairobi climate summit closed with a pledge by Kenya's president William Ruto "
        "to triple adaptation funding for East African farmers hit by drought.\n\nDelegates from 40 countries "
        "agreed on a fund hosted by the African Development Bank, to be reviewed in Addis Ababa next year."
    )
    settings = load_settings(write_config(tmp_path, ""), overrides={"pipeline": {"seeds_dir": str(seeds_dir)}},
                             env={})
    assert _load(settings) == 2
    first = _counts(settings)
    assert first[0] == 2 and first[1] > 0

    assert _load(settings) == 0  # unchanged files are not even re-read into the pipeline
    assert _counts(settings) == first

    other = seeds_dir / "001_other.txt"
    other.write_text(other.read_text().replace("triple", "double"))
    assert _load(settings) == 1
    assert _counts(settings)[0] == 2  # replaced, not added
    with connect(settings.warehouse, read_only=True) as conn:
        text = conn.execute("select text from articles where seed_file = '001_other.txt'").fetchone()[0]
        assert "double adaptation" in text


def test_reload_seeds_records_its_run(prefect_harness: None, tmp_path: Path) -> None:
    """The reload-seeds flow leaves a `runs` row like every flow that writes articles, also when nothing changed."""
    from flows.run.loader import reload_seeds

    config = write_config(tmp_path, "")
    settings = load_settings(config, env={})
    n = len(read_seeds(settings.pipeline.seeds_dir)[0])
    first = reload_seeds(config=str(config))
    assert first["status"] == "completed" and first["seeds_loaded"] == first["articles_new"] == n > 0
    again = reload_seeds(config=str(config))
    assert again["seeds_loaded"] == again["articles_new"] == 0
    with connect(settings.warehouse, read_only=True) as conn:
        rows = conn.execute("select run_id, flow, status, articles_new, finished_at is not null from runs "
                            "order by started_at").fetchall()
    assert rows == [(first["run_id"], "reload_seeds", "completed", n, True),
                    (again["run_id"], "reload_seeds", "completed", 0, True)]
