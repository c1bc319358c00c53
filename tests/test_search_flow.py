"""The `search` flow (issue 24, item 5): a search from the Prefect UI publishes its results as a table artifact,
against a real Prefect API (the session's harness) and a real warehouse with its index.

Covers: flows.run.searchflow
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_search import STORIES, _doc, _load

from flows.core.settings import load_settings
from flows.ops.deploy import deployments
from flows.run.searchflow import search_articles
from flows.warehouse import search_index


def test_a_search_run_publishes_its_results_as_a_table_artifact(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES)], "b-1")
    _load(s, [_doc(1, *STORIES[1], url="https://copy.example/carbon", feed="valley")], "b-2")
    assert search_index.refresh(s).articles == len(STORIES)
    state = search_articles(query='"prime minister" OR apple', lang="en", warehouse_path=str(s.warehouse.path),
                            return_state=True)
    rows = state.result()
    assert [(r["title"], r["copies"]) for r in rows] == [
        ("[Carbon levy](https://outlet.example/1)", 1), ("[Orchard harvest](https://outlet.example/3)", 0)] or \
        sorted(r["copies"] for r in rows) == [0, 1]
    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["search-results"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    table = json.loads(art.data) if isinstance(art.data, str) else art.data
    assert {r["title"] for r in table} == {r["title"] for r in rows}
    assert "«minister»" in " ".join(r["snippet"] for r in table) or "«apple»" in " ".join(r["snippet"] for r in table)


def test_a_bad_query_fails_the_run_in_one_line(prefect_harness: None, tmp_path: Path) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(0, *STORIES[0])], "b-1")
    search_index.refresh(s)
    state = search_articles(query='"open', warehouse_path=str(s.warehouse.path), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="unbalanced quote"):
        state.result()


def test_newsflow_serve_offers_the_search_deployment_with_the_feed_choices() -> None:
    settings = load_settings()
    (find,) = [d for d in deployments(settings) if d.flow_name == "search"]
    props = find._parameter_openapi_schema.properties
    assert {"query", "lang", "since", "until", "feeds", "tags", "limit"} <= set(props)
    feeds = [o for o in props["feeds"].get("anyOf", [props["feeds"]]) if o.get("type") == "array"]
    assert feeds[0]["items"]["enum"] == sorted(f.name for f in settings.feeds)
