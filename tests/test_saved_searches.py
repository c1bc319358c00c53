"""Saved searches (issue 24, item 4): `[[searches]]` in the config, their matches among a run's new articles as a
table artifact and a `newsflow.search.matched` event that reaches the Prefect API (the session's harness: a real
server on loopback), the example automation that sends a notification on it, and the recent matches in
`newsflow status` and the HTML report (never failing them when the index is missing, behind or unreadable).

Covers: flows.run.savedsearches, flows.warehouse.savedmatches, flows.ops.status
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from test_search import DEDUP, STORIES, _doc, _load

from flows.cli import main
from flows.core.errors import ConfigError
from flows.core.records import Document
from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.run import savedsearches
from flows.warehouse import database, reportpage, search_index, writer
from flows.warehouse.staging import Batch

COAL = ("The last deep coal mine in the valley closes on Friday after ninety years, and its four hundred miners "
        "will be offered retraining at the county college, union leaders said after a tense meeting.")
SEARCHES = {"searches": [{"name": "Energy desk", "query": "carbon OR coal", "lang": "en"},
                         {"name": "Orchards", "query": "apple harvest"}]}


def test_a_saved_search_with_a_bad_query_stops_the_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[searches]]\nname = "x"\nquery = "\\"open"\n')
    with pytest.raises(ConfigError, match="unbalanced quote"):
        load_settings(config)


def test_new_matches_become_an_artifact_and_an_event(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    config = tmp_path / "c.toml"
    config.write_text("\n".join(f'[[searches]]\nname = "{s["name"]}"\nquery = "{s["query"]}"\n'
                                + (f'lang = "{s["lang"]}"\n' if "lang" in s else "") for s in SEARCHES["searches"]))
    s = load_settings(config, warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:3])], "b-1")
    search_index.refresh(s)
    _load(s, [_doc(n, *STORIES[n]) for n in (3, 4)] + [_doc(9, "en", "Coal mine", COAL)], "b-2")
    search_index.refresh(s)
    new = savedsearches.run_articles(s, "run-1")  # every stored article carries run-1 here: take the second batch's
    new = [i for i in new if i in {_id(s, t) for t in ("Orchard harvest", "Vote à Lyon", "Coal mine")}]
    found = savedsearches.publish(s, new, logging.getLogger("test"), run_id="run-1")
    assert {k: [h.title for h in v] for k, v in found.items()} == {"Energy desk": ["Coal mine"],
                                                                  "Orchards": ["Orchard harvest"]}
    EventsWorker.drain_all()
    api = PREFECT_API_URL.value()
    deadline = time.monotonic() + 30
    events: list[dict] = []
    while time.monotonic() < deadline and len(events) < 2:  # the server stores events as its consumer gets them
        r = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"name": ["newsflow.search.matched"]}},
                                                     "limit": 10})
        events = [e for e in r.json()["events"] if e["payload"].get("run_id") == "run-1"
                  and e["resource"]["prefect.resource.id"].startswith("newsflow.search.")]
        time.sleep(0.2)  # polling the API for a stored event, bounded by the deadline
    by_search = {e["payload"]["search"]: e for e in events}
    assert set(by_search) == {"Energy desk", "Orchards"}
    assert by_search["Energy desk"]["payload"]["article_ids"] == [_id(s, "Coal mine")]
    assert by_search["Orchards"]["resource"]["prefect.resource.id"] == "newsflow.search.orchards"


def _id(s: Settings, title: str) -> int:
    import duckdb

    with duckdb.connect(str(s.warehouse.path), read_only=True) as conn:
        return conn.execute("select article_id from articles where title = ?", [title]).fetchone()[0]


def test_the_example_automation_is_valid() -> None:
    from prefect.events.schemas.automations import AutomationCore

    specs = yaml.safe_load((PROJECT_ROOT / "automations" / "newsflow.yaml").read_text())["automations"]
    (spec,) = [a for a in specs if "newsflow.search.matched" in a["trigger"]["expect"]]
    spec["actions"][0]["block_document_id"] = str(uuid.uuid4())
    AutomationCore.model_validate(spec)


def _searches_config(tmp_path: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(f'[warehouse]\npath = "{tmp_path / "wh.duckdb"}"\n' + "\n".join(
        f'[[searches]]\nname = "{s["name"]}"\nquery = "{s["query"]}"\n' + (f'lang = "{s["lang"]}"\n' if "lang" in s
                                                                         else "") for s in SEARCHES["searches"]))
    return config


def _load_run(s: Settings, docs: list[Document], run_id: str, hours_ago: int = 0) -> None:
    """Load `docs` as run `run_id`, then date their load `hours_ago` back (the window counts by loaded_at)."""
    batch = Batch(f"b-{run_id}", run_id)
    batch.add("docs", *docs)
    with database.connect(s.warehouse) as conn:
        database.migrate(conn)
        writer.load_batch(conn, batch, DEDUP)
        conn.execute("update articles set loaded_at = loaded_at - to_hours(?::bigint) where run_id = ?",
                     [hours_ago, run_id])


@pytest.fixture
def three_runs(tmp_path: Path) -> Settings:
    """Runs of three days ago (a carbon story), two hours ago (carbon, orchard) and now (coal, marathon),
    with the search index built over all of them."""
    s = load_settings(_searches_config(tmp_path))
    _load_run(s, [_doc(1, *STORIES[1])], "run-a", hours_ago=72)
    _load_run(s, [_doc(2, *STORIES[2]), _doc(3, *STORIES[3])], "run-b", hours_ago=2)
    _load_run(s, [_doc(9, "en", "Coal mine", COAL), _doc(0, *STORIES[0])], "run-c")
    assert search_index.refresh(s).mode == "base"
    return s


def _status(s: Settings, capsys: pytest.CaptureFixture) -> list[str]:
    assert main(["status", "--config", str(s.config_path)]) == 0
    out = capsys.readouterr().out
    section = out[out.index("Saved searches"):out.index("Staged batches")].splitlines()
    return [line for line in section if not line.startswith("Snapshot:")]  # the next section, the snapshot's age


def test_status_shows_each_saved_search_with_its_recent_matches(three_runs: Settings,
                                                                capsys: pytest.CaptureFixture) -> None:
    lines = _status(three_runs, capsys)
    assert "run run-c" in lines[0]
    energy = lines.index("  Energy desk (carbon OR coal): 2 in 24 h, 1 in the last run")
    assert sorted(lines[energy + 1:energy + 3]) == ["    - Coal mine", "    - Tax reform"]  # not the old levy
    assert lines[energy + 3] == "  Orchards (apple harvest): 1 in 24 h, 0 in the last run"
    assert lines[energy + 4] == "    - Orchard harvest"
    assert not any("Carbon levy" in line for line in lines)


def test_status_says_in_one_line_when_the_index_is_behind_missing_or_unreadable(
        three_runs: Settings, capsys: pytest.CaptureFixture) -> None:
    s = three_runs
    _load_run(s, [_doc(12, "en", "Coal price", "Coal prices rose again as the winter began early.")], "run-d")
    lines = _status(s, capsys)  # not refreshed: the new coal story is not in the index yet
    assert "  Energy desk (carbon OR coal): 2 in 24 h, 0 in the last run" in lines
    assert [line for line in lines if "behind" in line] == [
        "  the search index is behind: 1 of the 5 recent articles are not in it yet, so their matches are missing "
        "(the next ingest that loads articles refreshes it; `newsflow search --rebuild` now)"]

    s.warehouse.search_path.write_bytes(b"not a duckdb file" * 100)
    lines = _status(s, capsys)
    assert len(lines) == 2 and lines[1].startswith(
        f"  saved searches not shown: search index damaged: {s.warehouse.search_path} cannot be read (")
    assert lines[1].endswith("`newsflow search --rebuild` builds it again from the warehouse (so does "
                             "`newsflow maintain --step cache`)")

    s.warehouse.search_path.unlink()
    lines = _status(s, capsys)
    assert lines[1:] == ["  saved searches not shown: no search index yet (each ingest that loads articles "
                         "refreshes it; `newsflow search --rebuild` builds it now)"]


def _section(page: str) -> str:
    m = re.search(r"<section><h2>Saved searches</h2>(.*?)</section>", page, re.S)
    assert m, "no Saved searches section"
    return m.group(1)


def test_the_report_lists_each_saved_search_recent_matches_as_links(three_runs: Settings, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(three_runs.config_path), "--out", str(out)]) == 0
    section = _section(out.read_text())
    assert "<h3>Energy desk</h3>" in section and "<h3>Orchards</h3>" in section
    links = dict(re.findall(r'<a href="([^"]+)" rel="noopener noreferrer nofollow">([^<]+)</a>', section))
    assert links == {"https://outlet.example/9": "Coal mine", "https://outlet.example/2": "Tax reform",
                     "https://outlet.example/3": "Orchard harvest"}
    assert "2 in the last 24 h, 1 in the last run" in section

    three_runs.warehouse.search_path.unlink()  # no index: the page is still written, the section says why
    reportpage.write(three_runs.warehouse, out, searches=three_runs.searches)
    section = _section(out.read_text())
    assert "no search index yet" in section and "<a " not in section
