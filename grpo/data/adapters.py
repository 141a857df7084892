"""GSM8K and MATH-500 from the shared data directory, with the vendored fixtures as a fallback.

The shared directory is ../shared/data next to the repository (override: $GRPO_SHARED_DATA). Where it is
absent, e.g. in an installed wheel, the ~50-row subsets in grpo/data/fixtures stand in, with a warning,
since a run on 50 rows where 1319 were meant should not pass unnoticed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from grpo.data.records import Record, map_record, read_records
from common.errors import UserError

SHARED_DATA_ENV = "GRPO_SHARED_DATA"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

log = logging.getLogger(__name__)


def shared_data_dir() -> Path:
    """$GRPO_SHARED_DATA, else ../shared/data beside the repository this package sits in."""
    configured = os.environ.get(SHARED_DATA_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "data"


def gsm8k_final_answer(solution: str) -> str:
    """The final answer of a GSM8K solution: the text after "#### ", thousands commas removed."""
    marker = solution.rfind("####")
    if marker < 0:
        raise ValueError("GSM8K answer has no '#### <final answer>' line")
    final = solution[marker + 4:].strip().replace(",", "")
    if not final:
        raise ValueError("GSM8K answer has nothing after '####'")
    return final


def _gsm8k_row(record: Record, origin: str) -> dict[str, Any]:
    row = map_record(record, {}, origin)
    solution = row["answer"]
    try:
        row["answer"] = gsm8k_final_answer(solution)
    except ValueError as exc:
        raise UserError(f"{origin}: {record[0]}: {exc}") from exc
    row["solution"] = solution[: solution.rfind("####")].strip()  # the worked steps, for SFT
    return row


def _math500_row(record: Record, origin: str) -> dict[str, Any]:
    # `answer` as it is (LaTeX); `solution`, `subject`, `level`, `unique_id` pass through.
    return map_record(record, {"question": "problem"}, origin)


@dataclass(frozen=True)
class Adapter:
    """A public dataset: its splits and how one of its JSONL records becomes our row."""

    splits: tuple[str, ...]
    to_row: Callable[[Record, str], dict[str, Any]]


ADAPTERS: dict[str, Adapter] = {
    "gsm8k": Adapter(splits=("train", "test"), to_row=_gsm8k_row),
    "math500": Adapter(splits=("test",), to_row=_math500_row),
}


def adapter_file(name: str, split: str) -> Path:
    """The shared file for (dataset, split) where it exists, else the vendored fixture (with a warning)."""
    shared = shared_data_dir() / name / f"{split}.jsonl"
    if shared.is_file():
        return shared
    fixture = FIXTURES_DIR / f"{name}_{split}.jsonl"
    log.warning("%s is absent; using the vendored subset %s instead", shared, fixture)
    return fixture


def adapter_rows(name: str, split: str) -> list[dict[str, Any]]:
    """All rows of a public dataset split, as our rows ("question", "answer" and the dataset's extras)."""
    adapter = ADAPTERS[name]
    if split not in adapter.splits:
        raise UserError(f"{name} has the splits {list(adapter.splits)}, not {split!r}")
    path = adapter_file(name, split)
    return [adapter.to_row(record, str(path)) for record in read_records(path)]

