"""Reading JSON-lines files with errors that name the file and the line (standard library only, so the
reward workers can import it cheaply)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import UserError


def read_json_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a line that is not UTF-8, not JSON or not an object
    is a UserError "<path>: line N: ...". A missing file is a UserError too."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    rows = []
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            where = f"{path}: line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{where}: not UTF-8 text ({exc})") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
            rows.append((number, row))
    return rows
