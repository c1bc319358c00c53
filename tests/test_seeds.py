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


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2026-03-03", "9999-12-31"])
def test_an_implausible_date_is_the_file_s_error(day: str) -> None:
    """A seed dated before 1900 or after tomorrow is a typo; kept, "0001-01-01" stopped every load (the stories'
    window reached below year 1) and "9999-12-31" became the report's top story."""
    with pytest.raises(SeedFormatError, match=rf"x\.txt: {day} is not a plausible publication date"):
        parse_seed("x.txt", f"date {day} Some text.", today=date(2026, 3, 1))
    assert parse_seed("x.txt", "date 2026-03-02 Some text.", today=date(2026, 3, 1)).published == date(2026, 3, 2)
    assert parse_seed("x.txt", "date 1900-01-01 Some text.").published == date(1900, 1, 1)


def test_a_pipe_a_device_a_huge_file_and_a_name_not_utf8_are_their_files_errors(tmp_path: Path) -> None:
    """Each is one error row and the others load. A FIFO named like a seed made the read wait for a writer forever
    (every run hung), a name that is not UTF-8 could not be staged (every run failed), and a symlink to /dev/zero
    would have been read until memory ran out."""
    import os

    (tmp_path / "a.txt").write_text("date 2024-01-01 Fine text.")
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "folder.txt").mkdir()
    (tmp_path / "big.txt").write_text("date 2024-01-01 " + "word " * 30)
    (tmp_path / os.fsdecode(b"bad-\xff-name.txt")).write_text("date 2024-01-01 Fine text too.")
    seeds, errors = read_seeds(tmp_path, max_bytes=100)
    assert [s.name for s in seeds] == ["a.txt"]
    found = {e.name: e.code for e in errors}
    assert found == {"fifo.txt": "not_a_file", "zero.txt": "not_a_file", "folder.txt": "not_a_file",
                     "big.txt": "too_large", "bad-\ufffd-name.txt": "bad_name"}
    assert all(e.url.encode("utf-8") for e in errors)  # each can be stored as its page_fetches row


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


def test_a_missing_seeds_folder_is_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A seeds folder moved or mistyped read as "0 seed files loaded", nothing more: now a warning names it."""
    settings = load_settings(write_config(tmp_path, ""), env={"NEWSFLOW_PIPELINE__SEEDS_DIR": str(tmp_path / "no")})
    with caplog.at_level("WARNING", logger="newsflow.runstate"):
        assert runstate.seeds_to_load(settings, stored={}) == ([], [])
    assert f"the seeds folder {tmp_path / 'no'} is missing" in caplog.text
