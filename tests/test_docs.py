"""The docs cannot rot: every SQL example of docs/schema.md runs (and returns rows) on a demo-filled warehouse,
every table, view and column in the warehouse is documented there and nothing documented is missing from it; and
docs/architecture.md and the README's folder table name every module of flows/ and no module that is gone.

Covers: none (the docs: docs/schema.md against the warehouse, docs/architecture.md and the README against flows/)
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import copy_demo

from flows.core.settings import PROJECT_ROOT

FLOWS = PROJECT_ROOT / "flows"
ARCHITECTURE = PROJECT_ROOT / "docs" / "architecture.md"
README = PROJECT_ROOT / "README.md"
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


def flows_modules() -> list[Path]:
    """Every module of flows/ but the packages' docstring-only __init__.py, as paths relative to the project."""
    return sorted(p.relative_to(PROJECT_ROOT) for p in FLOWS.rglob("*.py") if p.name != "__init__.py")


def folder_rows(text: str) -> dict[str, str]:
    """The folder table's rows: `flows/x/` (or `flows/cli.py`) -> the rest of its line."""
    return {m[1]: m[2] for m in re.finditer(r"^\| `(flows/[a-z_]+/|flows/[a-z_]+\.py)` \|(.*)$", text, flags=re.M)}


def test_architecture_names_every_module_and_no_module_that_is_gone() -> None:
    text = ARCHITECTURE.read_text()
    missing = [str(p) for p in flows_modules() if f"`{p}`" not in text]
    assert not missing, f"docs/architecture.md does not name these modules (add a row with its job): {missing}"
    named = set(re.findall(r"`(flows/[a-z_/]+\.py)`", text))
    gone = sorted(n for n in named if not (PROJECT_ROOT / n).is_file())
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


@pytest.mark.parametrize("doc", [ARCHITECTURE, README], ids=["architecture", "readme"])
def test_the_folder_table_lists_every_folder_and_module(doc: Path) -> None:
    rows = folder_rows(doc.read_text())
    for path in flows_modules():
        folder = "flows/cli.py" if path.parent == Path("flows") else f"{path.parent}/"
        assert folder in rows, f"{doc.name}: the folder table has no row for `{folder}`"
        if folder.endswith("/"):
            assert f"`{path.stem}`" in rows[folder], f"{doc.name}: the `{folder}` row does not name `{path.stem}`"
    for folder, row in rows.items():
        if folder.endswith("/"):
            listed = set(re.findall(r"`([a-z_]+)`", row))
            real = {p.stem for p in (PROJECT_ROOT / folder).glob("*.py")} | {
                p.name for p in (PROJECT_ROOT / folder).iterdir() if p.is_dir() and p.name != "__pycache__"}
            assert listed <= real, f"{doc.name}: the `{folder}` row names what is not there: {sorted(listed - real)}"
