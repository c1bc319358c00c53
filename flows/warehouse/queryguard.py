"""The query guard: a user's SQL (`newsflow sql`, `export --query`) runs only when every part of it reads.

Allow-lists, so what is not known to read is refused before anything runs:
- statements: SELECT (with DESCRIBE, SHOW, SUMMARIZE and the reading PRAGMAs, which DuckDB turns into SELECTs),
  EXPLAIN [ANALYZE] of an allowed statement, and CALL of an allowed table function. COPY, EXPORT, ATTACH,
  DETACH, SET/RESET/USE, INSTALL/LOAD, CREATE, INSERT, UPDATE, DELETE, other PRAGMAs, transactions, PREPARE
  ... are refused, wherever they stand: in any statement of the text or under EXPLAIN ANALYZE.
- table functions (FROM f(...)), found by walking DuckDB's own parse tree of the statement (json_serialize_sql:
  every CTE, subquery, join and argument): the readers (read_parquet, read_csv, ...), DuckDB's catalog and
  metadata functions and a few generators. `query()`, `enable_logging()`, `checkpoint()`, ... are refused.
- scalar functions: DuckDB's own, except those it marks VOLATILE that have an effect (nextval, setseed,
  write_log, sleep_ms): DuckDB marks a function with side effects volatile, so nothing else can act.

The text is parsed on a private in-memory DuckDB with file access off (a PRAGMA such as import_database reads
files while it is parsed). The guard is the first fence; the connection the query then runs on is the second:
file access only to the raw archives, extensions never loaded, configuration locked (database.restrict_files).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

import duckdb

from flows.core.errors import QueryError

# Table functions that only read: files (under the allowed folder), the catalog, generators, a lake's metadata.
READ_TABLE_FUNCTIONS = frozenset({
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_full_metadata", "parquet_bloom_probe",
    "read_csv", "read_csv_auto", "sniff_csv", "read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto",
    "read_json_objects", "read_json_objects_auto", "read_ndjson_objects", "read_text", "read_blob", "glob",
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "histogram",
    "histogram_values", "pg_timezone_names", "icu_calendar_names", "summary",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory", "duckdb_optimizers",
    "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables", "duckdb_types", "duckdb_views",
    "duckdb_temporary_files", "duckdb_variables", "duckdb_table_sample", "duckdb_approx_database_count",
    "duckdb_connection_count",
    "pragma_table_info", "pragma_storage_info", "pragma_database_size", "pragma_metadata_info", "pragma_version",
    "pragma_platform", "pragma_show", "pragma_collations", "pragma_user_agent",
    "ducklake_snapshots", "ducklake_table_info", "ducklake_list_files", "ducklake_table_changes",
    "ducklake_table_insertions", "ducklake_table_deletions",
    # newsflow's own table macro over the search index (flows/warehouse/search.py): BM25 over read-only files.
    "search_articles",
})
# VOLATILE scalar functions that still only read (a random value, the current query, an error on purpose).
_HARMLESS_VOLATILE = frozenset({"random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "error", "currval",
                                "current_query", "current_query_id", "current_connection_id",
                                "current_transaction_id", "stats"})
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)  # whitespace and comments
_WORD = re.compile(r"([A-Za-z_]+)\b")
_EXPLAIN_OPTIONS = re.compile(r"\(\s*\w+(?:\s+\w+)?(?:\s*,\s*\w+(?:\s+\w+)?)*\s*\)")
_MAX_DEPTH = 8
_PARSER_LOCK = threading.Lock()  # one private parser connection, used by one thread at a time


def check(text: str) -> None:
    """Refuse (QueryError, one line) SQL text that does not parse or holds anything that is not known to read."""
    statements = _split(text)
    if not statements:
        raise QueryError("no SQL statement given")
    for kind, query in statements:
        _check_statement(kind, query, depth=0)


def _refuse(what: str) -> QueryError:
    return QueryError(f"queries are read-only: {what} cannot run here (only SELECT, DESCRIBE, SHOW, SUMMARIZE, "
                      "reading PRAGMAs and table functions, and EXPLAIN of those)")


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        conn.execute(f"set {setting} = false")
    conn.execute("set lock_configuration = true")
    return conn


def _split(text: str) -> list[tuple[str, str]]:
    """(statement type, its text) of every statement in `text`; a text DuckDB cannot parse is a QueryError."""
    with _PARSER_LOCK:
        try:
            return [(s.type.name, s.query) for s in _parser().extract_statements(text)]
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_statement(kind: str, query: str, *, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _refuse("statements nested this deep")
    if kind == "SELECT":
        _check_select(query)
    elif kind == "EXPLAIN":
        _check_statement(*_inner(query, "explain"), depth=depth + 1)
    elif kind == "CALL":
        inner_kind, inner = _inner(query, "call")
        if inner_kind != "SELECT":
            raise _refuse(f"CALL of {inner_kind} statements")
        _check_select(inner)
    else:
        raise _refuse(f"{kind if kind != '???' else 'such'} statements")


def _inner(query: str, keyword: str) -> tuple[str, str]:
    """The one statement under EXPLAIN [ANALYZE] [(options)], or the `select * from f(...)` a CALL f(...) runs."""
    rest = _after_word(query, keyword)
    if rest is None:
        raise _refuse(f"{keyword.upper()} statements in a form newsflow cannot check")
    if keyword == "explain":
        for option in ("analyze", "analyse"):
            after = _after_word(rest, option)
            rest = rest if after is None else after
        options = _EXPLAIN_OPTIONS.match(rest)
        if options:
            rest = rest[options.end():]
    else:
        rest = "select * from " + rest
    inner = _split(rest)
    if len(inner) != 1:
        raise _refuse(f"{keyword.upper()} statements in a form newsflow cannot check")
    return inner[0]


def _after_word(text: str, word: str) -> str | None:
    """`text` after leading comments and `word` (case-insensitive) and the comments after it; None otherwise."""
    text = text[_LEADING_NOISE.match(text).end():]
    m = _WORD.match(text)
    if not m or m.group(1).lower() != word:
        return None
    rest = text[m.end():]
    return rest[_LEADING_NOISE.match(rest).end():]


def _check_select(query: str) -> None:
    with _PARSER_LOCK:
        try:
            tree = json.loads(_parser().execute("select json_serialize_sql($q)", {"q": query}).fetchone()[0])
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None
    if tree.get("error") or len(tree.get("statements", ())) != 1:
        raise _refuse("statements newsflow cannot check")
    for kind, name in _functions(tree):
        if kind == "table" and name not in READ_TABLE_FUNCTIONS:
            raise _refuse(f"the table function {name}()")
        if kind == "scalar" and name in _acting_functions():
            raise _refuse(f"the function {name}()")


def _functions(node: Any) -> Iterator[tuple[str, str]]:
    """('table' | 'scalar', lower-case name) of every function anywhere in a parse tree."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            function = node["function"]
            yield "table", str(function.get("function_name", "")).lower()
            for value in function.values():  # its arguments: subqueries and scalar functions
                yield from _functions(value)
            for key, value in node.items():
                if key != "function":
                    yield from _functions(value)
            return
        if "function_name" in node:
            yield "scalar", str(node["function_name"]).lower()
        for value in node.values():
            yield from _functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _functions(value)


@cache
def _acting_functions() -> frozenset[str]:
    """DuckDB's VOLATILE functions that act (advance a sequence, seed the generator, log, sleep)."""
    with _PARSER_LOCK:
        rows = _parser().execute("select distinct function_name from duckdb_functions() "
                                 "where stability = 'VOLATILE'").fetchall()
    return frozenset(r[0].lower() for r in rows) - _HARMLESS_VOLATILE | {"pg_sleep"}
