"""Query results as valid JSON (`newsflow sql --format json`): one object per row, every value a JSON value.

Python's json module writes `Infinity` and `NaN`, which no JSON parser reads, and `default=str` turned a JSON
column into a string of JSON. Here: non-finite floats are null, JSON columns (also inside lists, structs and maps)
are their JSON value, decimals are numbers, dates and times ISO 8601 strings, intervals seconds, blobs base64, UUIDs
and anything else their text; map keys become strings, as JSON object keys must be.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def row_json(columns: list[str], types: list[Any], row: tuple[Any, ...]) -> str:
    """One result row as one line of JSON (`types`: the DuckDB types of the columns, to find JSON ones)."""
    obj = {name: value_json(value, typ) for name, typ, value in zip(columns, types, row, strict=True)}
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def value_json(value: Any, typ: Any = None) -> Any:
    """`value` as what json.dumps writes as valid JSON; `typ` (a DuckDB type, or None) says which strings are
    JSON text and what a nested value's parts are."""
    if value is None:
        return None
    name = str(typ) if typ is not None else ""
    if name == "JSON" and isinstance(value, str):
        return plain(json.loads(value))  # DuckDB checked it is JSON; plain() drops a NaN some parsers let in
    parts = _children(typ)
    if parts and isinstance(value, dict):
        if typ.id == "map":
            return {_key(k): value_json(v, parts.get("value")) for k, v in value.items()}
        return {str(k): value_json(v, parts.get(k)) for k, v in value.items()}
    if parts and isinstance(value, list | tuple):
        return [value_json(v, parts.get("child")) for v in value]
    return plain(value)


def plain(value: Any) -> Any:
    """Any Python value DuckDB returns (or json.loads made) as a JSON-writable one, with no type to go by."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return str(value)  # UUID, and whatever a newer DuckDB adds


def _key(key: Any) -> str:
    value = plain(key)
    return value if isinstance(value, str) else json.dumps(value, allow_nan=False)


def _children(typ: Any) -> dict[str, Any]:
    """The named parts of a nested DuckDB type (list and array: `child`; map: `key`, `value`; struct: its
    fields); empty for a plain type or no type."""
    if typ is None or getattr(typ, "id", None) not in ("list", "array", "struct", "map"):
        return {}
    return {name: part for name, part in typ.children if not isinstance(part, int)}
