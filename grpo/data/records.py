"""Reading rows from local files and shaping them into our columns, with errors that say where a row is.

A record is (where, row): `where` names the row in its file ("line 7" for JSON Lines, "row 7" for JSON and
Parquet, both counted from 1) so every error can point at it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UserError
from common.jsonl import read_json_objects

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
REQUIRED_COLUMNS = ("question", "answer")

Record = tuple[str, dict[str, Any]]


def read_records(path: Path) -> list[Record]:
    """Every row of a .jsonl, .json (a list of objects) or .parquet file. Blank JSONL lines are skipped."""
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{path}: not a readable Parquet file ({exc})") from exc
        return [(f"row {i}", row) for i, row in enumerate(rows, start=1)]
    raise UserError(f"{path}: unsupported data file type {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}")


def _read_jsonl(path: Path) -> list[Record]:
    return [(f"line {number}", row) for number, row in read_json_objects(path)]


def _read_json(path: Path) -> list[Record]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of objects, got {type(rows).__name__}")
    records = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
        records.append((f"row {i}", row))
    return records


def map_record(record: Record, columns: dict[str, str], origin: str) -> dict[str, Any]:
    """The record with source columns renamed to ours (`columns` maps ours -> source) and checked.

    Unmapped source columns pass through under their own names; a mapped one appears under our name only,
    and a source column that has the name of a mapping target gives way to the mapped one. "question" must be non-empty text and "answer" text or a number (numbers become
    their decimal string, 72.0 -> "72"); anything else is a UserError naming `origin` and the row.
    """
    where, source = record
    renamed = set(columns.values()) | set(columns)
    row = {key: value for key, value in source.items() if key not in renamed}
    for ours, theirs in columns.items():
        if theirs not in source:
            raise UserError(f"{origin}: {where}: no column {theirs!r} (mapped to {ours!r}); "
                            f"the row has {sorted(source)}")
        row[ours] = source[theirs]
    for name in REQUIRED_COLUMNS:
        if name not in row:
            raise UserError(f"{origin}: {where}: no column {name!r}; the row has {sorted(source)} "
                            f"(map one with `columns: {{{name}: <column>}}`)")
    try:
        required = {"question": _question_text(row.pop("question")), "answer": answer_text(row.pop("answer"))}
    except ValueError as exc:
        raise UserError(f"{origin}: {where}: {exc}") from exc
    return required | row


def _question_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"question must be text, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise ValueError("question is empty")
    return value.strip()


def answer_text(value: Any) -> str:
    """The gold answer as a string: text as it is (stripped), an integral number without a decimal point.

    Raises ValueError for null, booleans, NaN/infinity, lists and other values that hold no single answer.
    """
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("answer is empty")
        return value.strip()
    if isinstance(value, bool) or value is None:
        raise ValueError(f"answer must be text or a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        # Parquet turns an integer column with a null into floats; 72.0 must still match "72".
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"answer must be text or a number, got {type(value).__name__} {value!r}")

