"""Saved searches (issue 24, item 4): `[[searches]]` in the config, their matches among a run's new articles as a
table artifact and a `newsflow.search.matched` event that reaches the Prefect API (the session's harness: a real
server on loopback), and the example automation that sends a notification on it.

Covers: flows.run.savedsearches
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from test_search import STORIES, _doc, _load

from flows.core.errors import ConfigError
from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.run import savedsearches
from flows.warehouse import search_index

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
