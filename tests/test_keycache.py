"""The dedup lookup cache (flows/warehouse/keycache.py): the candidates it gives are those the warehouse tables
give, whether it is current, behind, built for another index, ahead of a restored warehouse, or unreadable.

Covers: flows.warehouse.keycache, flows.warehouse.candidates
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.run.documents import signature_fields
from flows.text import dedup
from flows.warehouse import candidates, keycache
from flows.warehouse.database import connect, migrate, transaction
from flows.warehouse.staging import Batch, stable_key
from flows.warehouse.writer import load_batch, signature_of

# Refreshed after every load (the default waits for 512 articles): these tests load a few dozen.
SETTINGS = DedupSettings(cache_refresh_articles=1)
_RNG = random.Random(20261202)
_VOCAB = [f"w{_RNG.randrange(10**6):06d}" for _ in range(3000)]


def _story(rng: random.Random) -> str:
    """Generated prose: lines of 10-20 words, sentences ending each line, 150-500 words."""
    lines = []
    for _ in range(rng.randint(10, 30)):
        lines.append(" ".join(rng.choice(_VOCAB) for _ in range(rng.randint(10, 20))) + ".")
    return "\n".join(lines)


def _copies(text: str, rng: random.Random) -> list[str]:
    """A lede summary, the tail alone (an abridged copy without the lede) and a copy-edited whole."""
    lines = text.splitlines()
    edited = [" ".join(rng.choice(_VOCAB) if rng.random() < 0.05 else w for w in line.split()) for line in lines]
    return ["\n".join(lines[:2]), "\n".join(lines[len(lines) // 2:]), "\n".join(edited)]


def _doc(url: str, text: str) -> Document:
    return Document(url=url, feed="test", entry_guid=url, title=url, text=text, body_source="extracted",
                    ner_skip_reason="not tagged in this test", **signature_fields(text, SETTINGS))


def _batches(seed: int, n_batches: int, per_batch: int) -> list[list[Document]]:
    """Batches of new stories, each batch after the first also holding copies of stories loaded before."""
    rng = random.Random(seed)
    out: list[list[Document]] = []
    stories: list[str] = []
    for b in range(n_batches):
        docs = []
        for i in range(per_batch):
            text = _story(rng)
            stories.append(text)
            docs.append(_doc(f"https://s{seed}.test/{b}/{i}", text))
        if b:
            for j, copy in enumerate(_copies(rng.choice(stories[:-per_batch]), rng)):
                docs.append(_doc(f"https://c{seed}.test/{b}/{j}", copy))
        out.append(docs)
    return out


def _load(wh: WarehouseSettings, batches: list[list[Document]], start: int = 0,
          settings: DedupSettings = SETTINGS) -> None:
    with connect(wh) as conn:
        migrate(conn)
        for n, docs in enumerate(batches, start):
            batch = Batch(f"b{n:04d}", "run")
            batch.add("docs", *docs)
            load_batch(conn, batch, settings)


def _probes(seed: int) -> dict[int, candidates.Signature]:
    """Copies of stored stories and unrelated texts, signed as a new batch would be."""
    rng = random.Random(seed)
    texts = [t for b in _batches(seed=1, n_batches=6, per_batch=12) for t in (d.text for d in b)]
    probes = [c for t in rng.sample(texts, 10) for c in _copies(t, rng)] + [_story(rng) for _ in range(10)]
    return {i: dedup.signature(t, SETTINGS) for i, t in enumerate(probes)}


def _candidates(wh: WarehouseSettings, sigs: dict[int, candidates.Signature]) -> dict[int, list[int]]:
    with connect(wh) as conn:
        return candidates.stored_candidates(conn, sigs, SETTINGS)


def _without_cache(wh: WarehouseSettings, sigs: dict[int, candidates.Signature], tmp: Path) -> dict[int, list[int]]:
    """The same lookup on a copy of the warehouse file with no cache beside it: the tables alone."""
    bare = tmp / "bare" / wh.path.name
    bare.parent.mkdir(exist_ok=True)
    shutil.copy(wh.path, bare)
    return _candidates(WarehouseSettings(path=bare), sigs)


def _cache(wh: WarehouseSettings) -> keycache.KeyCache:
    cache = keycache.KeyCache.open(wh.path.parent / f"{wh.path.name}.keys")
    assert cache is not None
    return cache


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> WarehouseSettings:
    wh = WarehouseSettings(path=tmp_path_factory.mktemp("keycache") / "k.duckdb")
    _load(wh, _batches(seed=1, n_batches=6, per_batch=12))
    return wh


def test_each_load_brings_the_cache_up_to_the_warehouse(loaded: WarehouseSettings) -> None:
    cache = _cache(loaded)
    with connect(loaded) as conn:
        state = keycache.index_state(conn)
        n_lsh, n_samples = conn.execute(
            "select (select count(*) from lsh_buckets), (select count(*) from shingle_samples)").fetchone()
    assert state is not None and cache.seq == state.seq > 0 and cache.usable_for(state)
    assert sum(s.rows for s in cache.segments["lsh"]) == n_lsh
    assert sum(s.rows for s in cache.segments["samples"]) == n_samples
    # Six loads, merged as they came: fewer segments than loads.
    assert 1 <= len(cache.segments["lsh"]) < 6


def test_candidates_with_the_cache_are_those_of_the_tables(loaded: WarehouseSettings, tmp_path: Path) -> None:
    sigs = _probes(seed=7)
    with_cache = _candidates(loaded, sigs)
    assert with_cache == _without_cache(loaded, sigs, tmp_path)
    # Copies of stored stories are found (the probes' first 30 are copies), unrelated texts are not.
    assert sum(1 for k in with_cache if k < 30) >= 25
    assert not [k for k in with_cache if k >= 30]


def test_a_cache_that_is_behind_is_completed_from_the_tables(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    batches = _batches(seed=1, n_batches=6, per_batch=12)
    _load(wh, batches[:3])
    folder = wh.path.parent / f"{wh.path.name}.keys"
    shutil.copytree(folder, tmp_path / "old-keys")
    _load(wh, batches[3:], start=3)
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "old-keys", folder)  # as after a refresh that failed three times
    cache = _cache(wh)
    with connect(wh) as conn:
        state = keycache.index_state(conn)
    assert state is not None and cache.usable_for(state) and cache.seq < state.seq
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)


def test_the_loader_refreshes_the_cache_once_it_is_enough_articles_behind(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    batches = _batches(seed=1, n_batches=6, per_batch=12)  # 12 new stories per load (and copies, not indexed)
    lazy = SETTINGS.model_copy(update={"cache_refresh_articles": 30})
    _load(wh, batches[:1], settings=lazy)
    first = _cache(wh).seq  # the first load builds the cache: there was none
    _load(wh, batches[1:3], start=1, settings=lazy)  # 24 behind: left as it is
    assert _cache(wh).seq == first
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)  # a cache behind answers the same
    _load(wh, batches[3:4], start=3, settings=lazy)  # 36 behind: brought up to the warehouse
    with connect(wh) as conn:
        state = keycache.index_state(conn)
    assert state is not None and _cache(wh).seq == state.seq > first


def test_a_cache_ahead_of_a_restored_warehouse_is_not_used_then_rebuilt_by_maintenance(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    batches = _batches(seed=1, n_batches=6, per_batch=12)
    _load(wh, batches[:2])
    shutil.copy(wh.path, tmp_path / "backup.duckdb")
    _load(wh, batches[2:4], start=2)
    shutil.copy(tmp_path / "backup.duckdb", wh.path)  # restored from the backup; the cache stays
    with connect(wh) as conn:
        assert not _cache(wh).usable_for(keycache.index_state(conn))
    # Loads after the restore reuse sequence numbers the stale cache holds: it must not answer for them. They
    # do not rebuild it either (that is the maintenance flow's job, off the hot path).
    _load(wh, batches[4:], start=4)
    with connect(wh) as conn:
        state = keycache.index_state(conn)
        # The first load after the restore dropped its manifest: a cache that caught up by numbers would miss rows.
        assert keycache.status(conn) == "missing"
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)
    with connect(wh) as conn:
        keycache.refresh(conn)  # as `newsflow maintain --step cache` does
    assert _cache(wh).usable_for(state)
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)


def test_a_cache_for_another_index_record_is_not_used(loaded: WarehouseSettings, tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    shutil.copy(loaded.path, wh.path)
    shutil.copytree(loaded.path.parent / f"{loaded.path.name}.keys", wh.path.parent / f"{wh.path.name}.keys")
    with connect(wh) as conn, transaction(conn):
        candidates.record_index(conn, SETTINGS, rebuilt=True)  # as `reprocess --step dedup` does at its end
    with connect(wh) as conn:
        state = keycache.index_state(conn)
        old = _cache(wh)
        assert not old.usable_for(state)
        keycache.refresh(conn)
    new = _cache(wh)
    assert new.usable_for(state)
    # The rebuild never reuses a file name of the cache it replaces (a reader may still have it mapped).
    old_names = {n for names in old.manifest["segments"].values() for n in names}
    assert not old_names & {n for names in new.manifest["segments"].values() for n in names}


def test_an_unreadable_cache_is_ignored_then_rebuilt_by_maintenance(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    batches = _batches(seed=1, n_batches=3, per_batch=12)
    _load(wh, batches[:2])
    folder = wh.path.parent / f"{wh.path.name}.keys"
    (folder / "manifest.json").write_text("{not json")
    assert keycache.KeyCache.open(folder) is None
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)
    _load(wh, batches[2:], start=2)  # a load never rebuilds it
    assert keycache.KeyCache.open(folder) is None
    with connect(wh) as conn:
        assert keycache.status(conn) == "missing"
        keycache.refresh(conn)  # the maintenance flow does
        assert _cache(wh).usable_for(keycache.index_state(conn))


def test_a_cache_that_cannot_be_written_does_not_fail_the_load(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    (tmp_path / "k.duckdb.keys").write_text("a file where the cache folder would go")
    _load(wh, _batches(seed=1, n_batches=2, per_batch=12))
    with connect(wh) as conn:
        assert conn.execute("select count(*) from articles").fetchone()[0] >= 24


def test_segment_lookup_finds_every_row_of_a_repeated_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    keys = np.concatenate([rng.integers(-2**62, 2**62, 500), np.full(7, 42), np.array([np.iinfo(np.int64).max])])
    ids = np.arange(keys.size, dtype=np.int64) * 1_000_003
    keycache._write_segment(tmp_path, "lsh-00000001", keys, ids)
    segment = keycache._Segment(tmp_path, "lsh-00000001")
    probes = np.sort(np.array([42, 7, np.iinfo(np.int64).max, keys[0]], dtype=np.int64))
    probe, found = segment.lookup(probes)
    got = sorted(zip(probes[probe].tolist(), found.tolist(), strict=True))
    expected = sorted((int(k), int(i)) for k, i in zip(keys, ids, strict=True) if k in set(probes.tolist()))
    assert got == expected


def test_a_segment_opened_before_a_merge_deleted_its_files_still_answers(tmp_path: Path) -> None:
    """A refresh in another process merges segments and deletes the old files while a run still looks up in the
    cache it opened: the lookups read the files opened with the segment, not the paths."""
    rng = np.random.default_rng(5)
    keys = rng.integers(-2**62, 2**62, 5000)
    ids = np.arange(keys.size, dtype=np.int64) + 100
    keycache._write_segment(tmp_path, "lsh-00000001", keys, ids)
    segment = keycache._Segment(tmp_path, "lsh-00000001")
    probes = np.sort(np.concatenate([keys[:300], keys[:50] + 1]))
    before = segment.lookup(probes)
    for path in tmp_path.glob("lsh-00000001.*"):
        path.unlink()
    after = segment.lookup(probes)
    assert before[0].size == 300
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


_EXTREMES = [int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).max) - 1, int(np.iinfo(np.int64).min)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30) | st.sampled_from(_EXTREMES), min_size=1, max_size=300),
       st.lists(st.integers(-1, 31) | st.sampled_from(_EXTREMES), max_size=40),
       st.sampled_from([2, 3, 4, 8, 512]), st.sampled_from([1, 3, 1000]))
def test_segment_lookup_is_a_brute_force_search_whatever_the_runs_and_blocks(
        tmp_path_factory: pytest.TempPathFactory, keys: list[int], probes: list[int], fence: int, chunk: int) -> None:
    """Runs of equal keys shorter and longer than a fence block, ending on a block's edge or past it, a short
    last block (whose read is filled with the largest key), the largest and smallest keys themselves, probes
    looked up a few at a time (equal probes split across two lookups): the lookup finds exactly the rows a scan
    does."""
    folder = tmp_path_factory.mktemp("seg")
    stored = np.array(keys, dtype=np.int64)
    ids = np.arange(stored.size, dtype=np.int64) * 7 + 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keycache, "_FENCE", fence)
        mp.setattr(keycache, "_PROBES", chunk)
        keycache._write_segment(folder, "lsh-00000001", stored, ids)
        segment = keycache._Segment(folder, "lsh-00000001")
        wanted = np.sort(np.array(probes, dtype=np.int64))
        probe, found = segment.lookup(wanted)
    got = sorted(zip(wanted[probe].tolist(), found.tolist(), strict=True))
    expected = sorted((int(p), int(i)) for p in wanted.tolist() for k, i in zip(stored.tolist(), ids.tolist(),
                                                                                strict=True) if k == p)
    assert got == expected


def test_a_rebuild_in_chunks_with_merges_gives_the_same_candidates(loaded: WarehouseSettings, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked rebuild and the merges that a large warehouse goes through, at a size a test can afford."""
    monkeypatch.setattr(keycache, "_CHUNK", 397)
    monkeypatch.setattr(keycache, "_FENCE", 8)
    monkeypatch.setattr(keycache, "_MAX_ROWS", 1500)
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    shutil.copy(loaded.path, wh.path)
    with connect(wh) as conn:
        cache = keycache.refresh(conn)
        n_samples = conn.execute("select count(*) from shingle_samples").fetchone()[0]
    assert cache is not None and len(cache.segments["samples"]) > 1
    assert sum(s.rows for s in cache.segments["samples"]) == n_samples
    assert all(s.rows <= 1500 for s in cache.segments["samples"])
    # No intermediate merge is left on disk: only what the manifest lists.
    listed = {n for names in cache.manifest["segments"].values() for n in names}
    assert {p.name.split(".")[0] for p in cache.folder.glob("*.npy")} == listed
    sigs = _probes(seed=7)
    assert _candidates(wh, sigs) == _without_cache(wh, sigs, tmp_path)


def test_stored_signatures_follow_the_stored_text(tmp_path: Path) -> None:
    """Signatures of stored articles are kept between lookups, but never for a text or settings they were not
    made from."""
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    docs = _batches(seed=3, n_batches=1, per_batch=3)[0]
    _load(wh, [docs])
    with connect(wh) as conn:
        article_id, text = conn.execute("select article_id, text from articles order by article_id limit 1").fetchone()
        first = candidates.stored_signatures(conn, [article_id], SETTINGS)[article_id]
        assert np.array_equal(first.shingles, dedup.signature(text, SETTINGS).shingles)
        again = candidates.stored_signatures(conn, [article_id], SETTINGS)[article_id]
        assert again is first  # kept
        other = DedupSettings(shingle_size=4)
        assert not np.array_equal(candidates.stored_signatures(conn, [article_id], other)[article_id].shingles,
                                  first.shingles)
        new_text = _story(random.Random(99))
        conn.execute("update articles set text = $t, text_hash = $h where article_id = $a",
                     {"t": new_text, "h": dedup.text_hash(new_text), "a": article_id})
        changed = candidates.stored_signatures(conn, [article_id], SETTINGS)[article_id]
        assert np.array_equal(changed.shingles, dedup.signature(new_text, SETTINGS).shingles)


def test_signatures_remembered_from_the_workers_are_those_of_the_stored_text(tmp_path: Path) -> None:
    """The pre-check keeps the signatures the workers made of a batch (candidates.remember): each equals the one
    signed from the text as stored, is used instead of reading that text again, and never for another text."""
    wh = WarehouseSettings(path=tmp_path / "k.duckdb")
    docs = _batches(seed=5, n_batches=1, per_batch=4)[0]
    _load(wh, [docs])
    remembered = [(stable_key(d.url), signature_of(d)) for d in docs]
    candidates.remember(remembered, SETTINGS)
    with connect(wh) as conn:
        stored = dict(conn.execute("select article_id, text from articles").fetchall())
        got = candidates.stored_signatures(conn, [a for a, _ in remembered], SETTINGS)
        for article_id, sig in remembered:
            assert got[article_id] is sig
            fresh = dedup.signature(stored[article_id], SETTINGS)
            assert np.array_equal(sig.shingles, fresh.shingles) and np.array_equal(sig.buckets, fresh.buckets)
        article_id, sig = remembered[0]
        new_text = _story(random.Random(7))
        conn.execute("update articles set text = $t, text_hash = $h where article_id = $a",
                     {"t": new_text, "h": dedup.text_hash(new_text), "a": article_id})
        changed = candidates.stored_signatures(conn, [article_id], SETTINGS)[article_id]
        assert changed is not sig
        assert np.array_equal(changed.shingles, dedup.signature(new_text, SETTINGS).shingles)
