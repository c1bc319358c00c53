"""docs/schema.md cannot rot: every SQL example runs (and returns rows) on a demo-filled warehouse, and every
table, view and column in the warehouse is documented, and nothing documented is missing from it."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import copy_demo

from flows.core.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "schema.md"
TEXT = DOC.read_text()
EXAMPLES = re.findall(r"```sql\n(.*?)```", TEXT, flags=re.S)


def sections() -> dict[str, set[str]]:
    """`### name` heading -> the backquoted names in the first column of its table."""
    out: dict[str, set[str]] = {}
    reference = TEXT[TEXT.index("\n## Tables"):TEXT.index("\n## Example queries")]
    for part in re.split(r"^### ", reference, flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        out[name.strip()] = set(re.findall(r"^\| `([a-z0-9_]+)` \|", body, flags=re.M))
    return out


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    return copy_demo(tmp_path_factory, tmp_path_factory.mktemp("docs") / "demo.duckdb")


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("sql", EXAMPLES, ids=[f"example{i + 1}" for i in range(len(EXAMPLES))])
def test_every_example_query_runs_and_returns_rows(demo_db: Path, sql: str) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        rows = conn.execute(sql).fetchall()
    assert rows, f"the example returns no rows on the demo warehouse:\n{sql}"


def test_every_table_view_and_column_is_documented(demo_db: Path) -> None:
    documented = sections()
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        objects = conn.execute(
            "select table_name, list(column_name order by ordinal_position) from information_schema.columns "
            "where table_schema = 'main' group by table_name").fetchall()
    assert objects
    for name, columns in objects:
        assert name in documented, f"{name} has no '### {name}' section in docs/schema.md"
        assert set(columns) == documented[name], f"{name}: documented columns differ from the warehouse"
    assert set(documented) <= {name for name, _ in objects}, "docs/schema.md documents objects that do not exist"
