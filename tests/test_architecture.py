"""The architecture of docs/architecture.md, enforced: imports point one way, Prefect stays at the edges, and
every module of flows/ has a test module that says it covers it.

Every import statement of flows/ counts, wherever it is: at the top, inside a function, or under
`if TYPE_CHECKING:` (a circle of type-only imports is still a circle a reader has to untangle), and so does a
constant `importlib.import_module("...")`. Each failure names the offending import as file:line.

Covers: none (the import graph of all of flows/, and the `Covers:` lines of tests/)
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.core.settings import PROJECT_ROOT

# The layers, lowest first. A module may import modules of its own package and of the layers below it, never
# above. `flows/cli.py` (the `cli` layer) is the top; the package `flows` itself holds only a docstring.
LAYERS = ("core", "web", "feeds", "text", "warehouse", "run", "ops", "cli")

# Prefect is imported only at the edges: the modules that declare flows, tasks, artifacts, events and
# deployments. Everything else is plain library code that a test or another tool calls without Prefect.
# flows/run/ holds the flows themselves and is being split into several modules (the run modes, the loader,
# the end of a run, the tasks...), so Prefect is allowed there except in the stage and support modules named
# here, which must stay Prefect-free whatever the flow modules around them are called.
PREFECT_EDGES = frozenset({"flows.ops.deploy", "flows.ops.fanout", "flows.ops.maintain", "flows.ops.maintenance",
                           "flows.ops.schedule"})
PREFECT_EDGE_PACKAGE = "flows.run"
PREFECT_FREE_IN_RUN = frozenset({
    "flows.run.collect", "flows.run.pages", "flows.run.documents", "flows.run.stream", "flows.run.workers",
    "flows.run.progress",
})

TESTS_DIR = PROJECT_ROOT / "tests"
_COVERS = re.compile(r"^\s*Covers:\s*(.*?)\s*$", re.M)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (for flows: the module file, resolved from `from X import y`)
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where} {self.source} imports {self.target}"


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `root` (a package folder; `root.name` is the package)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(module: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The modules `from module import names` loads: `module.name` where that is a module, else `module`."""
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
    return subs if len(subs) == len(names) else [*subs, module]


def _absolute(source: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name of a relative import's module."""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports(root: Path) -> list[Import]:
    """Every import of every module under `root`, anywhere in the file (functions and TYPE_CHECKING included)."""
    known = modules(root)
    out: list[Import] = []
    for source, path in known.items():
        rel = path.relative_to(root.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    module = _absolute(source, path.name == "__init__.py", node.level, node.module)
                targets = _resolve(module, [a.name for a in node.names], known)
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                       or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")))):
                targets = [node.args[0].value]
            out += [Import(source, t, f"{rel}:{node.lineno}") for t in targets]
    return out


def layer_of(module: str) -> int | None:
    """The index in LAYERS of a flows module; -1 for the package `flows` itself; None for an unknown folder."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    name = "cli" if parts[1] == "cli" else parts[1]
    return LAYERS.index(name) if name in LAYERS else None


def internal(found: list[Import], package: str) -> list[Import]:
    return [i for i in found if i.target == package or i.target.startswith(package + ".")]


def cycles(found: list[Import], package: str) -> list[list[Import]]:
    """The import circles between modules of `package`: for each strongly connected component of two or more
    modules (or one that imports itself), the imports that close it."""
    edges: dict[str, set[str]] = {}
    for i in internal(found, package):
        edges.setdefault(i.source, set()).add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has ~60 nodes, so recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [sorted((i for i in internal(found, package) if i.source in c and i.target in c), key=str)
            for c in components]


def layer_violations(found: list[Import], package: str) -> list[str]:
    """Imports of a higher layer than the importer's own, and modules in no layer."""
    bad = []
    for i in internal(found, package):
        src, dst = layer_of(i.source), layer_of(i.target)
        if src is None or dst is None:
            folder = (i.source if src is None else i.target).split(".")[1]
            bad.append(f"{i}: flows/{folder}/ is in no layer; add it to LAYERS here and to docs/architecture.md")
        elif dst > src:
            bad.append(f"{i}: {LAYERS[src] if src >= 0 else package} may import only its own package and the "
                       f"layers below it ({' < '.join(LAYERS)}), not {LAYERS[dst]}")
    return bad


def may_import_prefect(module: str) -> bool:
    if module in PREFECT_EDGES:
        return True
    return module.startswith(PREFECT_EDGE_PACKAGE + ".") and module not in PREFECT_FREE_IN_RUN


def prefect_violations(found: list[Import]) -> list[str]:
    return [f"{i}: Prefect is imported only by the edge modules (tests/test_architecture.py PREFECT_EDGES); "
            "wrap this module's plain functions with task(...) in a flow module instead"
            for i in found if i.target.split(".")[0].startswith("prefect") and not may_import_prefect(i.source)]


FLOWS = PROJECT_ROOT / "flows"
FOUND = imports(FLOWS)


def test_the_import_graph_is_read() -> None:
    """A parser that found nothing would pass every rule below."""
    assert len(modules(FLOWS)) > 40
    assert any(i.source.startswith("flows.cli.") and i.target.startswith("flows.run.") for i in FOUND)
    assert any(i.target.startswith("prefect") for i in FOUND)


def test_no_import_cycles() -> None:
    found = cycles(FOUND, "flows")
    assert not found, "import cycles (break each one; an import inside a function counts too):\n" + "\n\n".join(
        "\n".join(str(i) for i in circle) for circle in found)


def test_imports_point_down_the_layers() -> None:
    bad = layer_violations(FOUND, "flows")
    assert not bad, "imports against the layer order of docs/architecture.md:\n" + "\n".join(bad)


def test_prefect_only_at_the_edges() -> None:
    bad = prefect_violations(FOUND)
    assert not bad, "\n".join(bad)


def test_the_rules_name_modules_that_exist() -> None:
    """A renamed module must not silently drop out of the Prefect-free list or the edge list."""
    known = modules(FLOWS)
    stale = sorted(m for m in PREFECT_EDGES | PREFECT_FREE_IN_RUN if m not in known)
    assert not stale, f"tests/test_architecture.py names modules that do not exist: {', '.join(stale)}"
    packages = {p.name for p in FLOWS.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS), (
        f"the sub-packages of flows/ ({', '.join(sorted(packages))}) differ from LAYERS: place a new one in the order "
        "here and in docs/architecture.md")


def test_the_checks_catch_a_cycle_an_upward_import_and_prefect(tmp_path: Path) -> None:
    """The rules above fail on a package that breaks them, naming file:line."""
    pkg = tmp_path / "flows"
    for folder in ("core", "run", "web"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                       "    from flows.core import b\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "core" / "c.py").write_text("import importlib\nimportlib.import_module('flows.web.d')\n")
    (pkg / "web" / "d.py").write_text("from flows.run.e import x\nimport prefect\n")
    (pkg / "run" / "e.py").write_text("from prefect import flow\nx = flow\n")
    (pkg / "run" / "collect.py").write_text("from prefect.artifacts import create_table_artifact\n")
    found = imports(pkg)
    assert [[str(i) for i in c] for c in cycles(found, "flows")] == [[
        "flows/core/a.py:3 flows.core.a imports flows.core.b", "flows/core/b.py:2 flows.core.b imports flows.core.a"]]
    layers = layer_violations(found, "flows")
    assert [v.split(" ")[0] for v in layers] == ["flows/core/c.py:2", "flows/web/d.py:1"]
    assert "not web" in layers[0] and "not run" in layers[1]
    assert [v.split(" ")[0] for v in prefect_violations(found)] == ["flows/run/collect.py:1", "flows/web/d.py:2"]


# -- every module has a test that says it covers it ------------------------------------------------------------


def covers(path: Path) -> list[str] | None:
    """The modules a test file's docstring names on its `Covers:` lines (several lines add up); None when it has
    none. `Covers: none (why)` says the file tests no module of flows/ by itself."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    lines = _COVERS.findall(doc)
    if not lines:
        return None
    return [n.strip() for line in lines if not line.startswith("none") for n in line.split(",") if n.strip()]


def library_modules() -> list[str]:
    """The modules of flows/ a test must cover: every .py file but the packages' docstring-only __init__.py."""
    return sorted(m for m, p in modules(FLOWS).items() if p.name != "__init__.py")


def test_every_test_module_says_what_it_covers() -> None:
    files = sorted(TESTS_DIR.glob("test_*.py"))
    assert files
    missing = [f"tests/{f.name}" for f in files if covers(f) is None]
    assert not missing, ("these test modules have no `Covers: flows.x.y, ...` line in their docstring: "
                         + ", ".join(missing))
    known = set(library_modules())
    unknown = [f"tests/{f.name}: Covers: names {name}, which is not a module of flows/"
               for f in files for name in covers(f) or [] if name not in known]
    assert not unknown, "\n".join(unknown)


def test_every_module_is_covered_by_a_test_module() -> None:
    covered = {name for f in TESTS_DIR.glob("test_*.py") for name in covers(f) or []}
    missing = [m for m in library_modules() if m not in covered]
    assert not missing, ("modules of flows/ that no test module's `Covers:` line names (write a test, or name the "
                         "module in the docstring of the test file that covers it): " + ", ".join(missing))


@pytest.mark.parametrize("line, want", [
    ("Covers: flows.core.urls", ["flows.core.urls"]),
    ("Covers: flows.core.urls, flows.web.fetch\n  Covers: flows.cli",
     ["flows.core.urls", "flows.web.fetch", "flows.cli"]),
    ("Covers: none (the docs, and nothing else)", []),
])
def test_covers_lines_are_read(tmp_path: Path, line: str, want: list[str]) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(f'"""A test.\n\n{line}\n"""\n')
    assert covers(path) == want
    path.write_text('"""A test without the line."""\n')
    assert covers(path) is None
