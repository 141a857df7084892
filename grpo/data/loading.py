"""load_rows: a DatasetSpec -> a `datasets.Dataset` with "question" and "answer" (strings) plus extra columns.

Every row is checked on the way in; a broken one is a UserError naming its file and row, never a silent drop.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset, load_dataset

from grpo.data.adapters import ADAPTERS, adapter_rows
from grpo.data.records import map_record, read_records
from grpo.data.spec import DatasetSpec
from grpo.data.tasks import TASKS
from common.errors import UserError


def load_rows(spec: DatasetSpec, base_dir: Path | None = None) -> Dataset:
    """The rows `spec` names: shuffled with `spec.seed` when asked, then cut to `spec.n` rows.

    Relative file paths resolve against `base_dir` (the recipe's folder; the working directory if None).
    """
    if spec.kind == "task":
        rows, origin = _task_rows(spec), spec.source
    elif spec.kind == "adapter":
        rows, origin = adapter_rows(spec.source, spec.split), spec.source
    elif spec.kind == "file":
        path = spec.local_path(base_dir)
        origin = str(path)
        rows = [map_record(record, spec.columns, origin) for record in read_records(path)]
    elif spec.kind == "stage":
        raise UserError(f"data source {spec.source!r} names the dataset of stage {spec.source[1:]!r}; the "
                        "pipeline runner must swap in that stage's output file before loading")
    else:
        rows, origin = _hub_rows(spec), f"hub dataset {spec.source!r} (split {spec.split!r})"
    if not rows:
        raise UserError(f"{origin}: no rows")
    dataset = rows_to_dataset(rows, origin)
    if spec.shuffle:
        dataset = dataset.shuffle(seed=spec.seed)
    if spec.n is not None and spec.n < len(dataset):
        dataset = dataset.select(range(spec.n))
    return dataset


def task_seed(seed: int, split: str) -> int:
    """The generator seed for a split: "train" uses `seed` as given; any other split hashes its name in, so
    a recipe's test rows are an independent draw rather than a copy of its training rows."""
    if split == "train":
        return seed
    return int.from_bytes(hashlib.sha256(f"{split}:{seed}".encode()).digest()[:4], "big")


HELD_OUT_PERCENT = 10  # share of a task's question space reserved for splits other than "train"


def is_held_out(question: str) -> bool:
    """Whether a task question belongs to the held-out part of its task's question space.

    The partition is a fixed function of the question text, so no train row ever equals a test row, whatever
    the seeds and sizes (a small task like 2-digit addition has only 8,100 questions: independent draws
    would share about a tenth of a 3,000-row training set with the test set).
    """
    return hashlib.sha256(question.encode()).digest()[0] * 100 < HELD_OUT_PERCENT * 256


def rows_to_dataset(rows: list[dict[str, Any]], origin: str) -> Dataset:
    """A Dataset with the union of the rows' columns (a row without an extra column gets null there)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    arrays = {}
    for name in names:
        try:
            arrays[name] = pa.array([row.get(name) for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UserError(f"{origin}: column {name!r} mixes value types across rows ({exc})") from exc
    return Dataset.from_dict(arrays)


def _task_rows(spec: DatasetSpec) -> list[dict[str, Any]]:
    """`spec.n` rows of the split's side of the partition (is_held_out), in the generator's order.

    Generators extend a shorter list with a longer one (same seed), so drawing more and filtering keeps the
    first rows of a split stable as `n` grows.
    """
    options = {"difficulty": spec.difficulty} if spec.task == "arithmetic" else {}
    held_out = spec.split != "train"
    seed, want = task_seed(spec.seed, spec.split), spec.n or 0
    draw = want * (12 if held_out else 2) + 16
    while True:
        rows = [r for r in TASKS[spec.task](draw, seed, **options) if is_held_out(r["question"]) == held_out]
        if len(rows) >= want:
            return _mark_imperfections(rows[:want], spec)
        if draw > 200 * want + 10_000:
            raise UserError(f"{spec.source} (split {spec.split!r}): the task has fewer than {want} distinct-enough "
                            f"questions on this side of the train/held-out partition; ask for fewer rows")
        draw *= 2


def _mark_imperfections(rows: list[dict[str, Any]], spec: DatasetSpec) -> list[dict[str, Any]]:
    """Give a seeded share of the rows an `imperfection` ("forgotten_carry" or "untagged_answer"), which the
    sft stage writes into their targets (pipelines.sft.completion_for)."""
    if spec.imperfections is None:
        return rows
    carries, untagged = spec.imperfections.forgotten_carries, spec.imperfections.untagged_answers
    rng = random.Random(f"imperfections:{spec.seed}:{spec.split}")  # one draw per row: row i's mark is stable
    marked = []
    for row in rows:
        draw = rng.random()
        kind = "forgotten_carry" if draw < carries else "untagged_answer" if draw < carries + untagged else None
        marked.append({**row, "imperfection": kind})
    return marked


def _hub_rows(spec: DatasetSpec) -> list[dict[str, Any]]:
    origin = f"hub dataset {spec.source!r}"
    try:
        dataset = load_dataset(spec.source, spec.config, split=spec.split)
    except Exception as exc:  # no network, unknown name, bad config or split: each its own type, all the user's
        raise UserError(
            f"data source {spec.source!r} is not a task (task:{', task:'.join(TASKS)}), a built-in dataset "
            f"({', '.join(ADAPTERS)}) or a local file (.jsonl, .json, .parquet), and loading it from the Hugging Face "
            f"hub failed: {type(exc).__name__}: {exc}") from exc
    return [map_record((f"row {i}", dict(row)), spec.columns, origin) for i, row in enumerate(dataset, start=1)]
