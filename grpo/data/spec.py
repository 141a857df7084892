"""DatasetSpec: the one schema a recipe uses for every data source (`data:` in a stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from grpo.data.adapters import ADAPTERS
from grpo.data.arithmetic import ARITHMETIC_LEVELS
from grpo.data.records import FILE_SUFFIXES
from grpo.data.tasks import TASKS

SourceKind = Literal["task", "adapter", "file", "stage", "hub"]
TASK_PREFIX = "task:"
STAGE_PREFIX = "@"  # "@name": the dataset an earlier stage of the recipe writes (e.g. rejection sampling)


def source_kind(source: str) -> SourceKind:
    """What a `source` string names.

    "task:NAME" is a synthetic task; "gsm8k" and "math500" are the built-in adapters; a name ending in
    .jsonl/.json/.parquet or starting with "/", "./", "../" or "~" is a local file; "@name" is the output of
    an earlier stage (the recipe checks the name, the runner swaps in the file); anything else is a hub
    dataset name. A "/" alone does not make a path, since hub names have one ("openai/gsm8k").
    """
    if source.startswith(TASK_PREFIX):
        return "task"
    if source.startswith(STAGE_PREFIX):
        return "stage"
    if source in ADAPTERS:
        return "adapter"
    if Path(source).suffix.lower() in FILE_SUFFIXES or source.startswith(("/", "./", "../", "~")):
        return "file"
    return "hub"


def resolve_local_path(source: str, base_dir: Path | None) -> Path:
    """A local source as a path: "~" expanded, a relative path taken from `base_dir` (the recipe's folder)."""
    path = Path(source).expanduser()
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


class Imperfections(BaseModel, extra="forbid"):
    """Shares of a task's SFT rows given an imperfect target (each row gets at most one imperfection)."""

    forgotten_carries: float = Field(0.0, ge=0.0, le=1.0, description=(
        "task:arithmetic: the working forgets its first carry and so reaches a wrong answer (a row with no "
        "carry keeps its right working)."))
    untagged_answers: float = Field(0.0, ge=0.0, le=1.0, description=(
        "The answer follows </think> as 'The answer is X.' instead of an <answer> block: right, but not in "
        "the format a strict grader reads."))

    @model_validator(mode="after")
    def _check_total(self):
        if self.forgotten_carries + self.untagged_answers > 1.0:
            raise ValueError("forgotten_carries + untagged_answers must be at most 1 (one imperfection per row)")
        return self


class DatasetSpec(BaseModel, extra="forbid"):
    """Where a stage's rows come from and how they become rows with "question" and "answer" (strings).

    Validate with `DatasetSpec.model_validate(data, context={"base_dir": recipe_folder})` to have relative
    file paths checked at once; without that context they are checked when the data is loaded.
    """

    source: str = Field(description=(
        "'task:arithmetic' or 'task:countdown' (generated), 'gsm8k' or 'math500' (../shared/data, else the "
        "vendored subsets), a local .jsonl/.json/.parquet file (relative to the recipe's folder), "
        "'@stage_name' (the dataset an earlier stage writes) or a Hugging Face hub dataset name (loaded "
        "with datasets.load_dataset)."))
    split: str = Field("train", validate_default=True, description=(
        "The split: gsm8k has train and test, math500 only test. For a task, 'train' draws from 90% of the "
        "question space and any other split from the held-out 10% (a fixed hash of the question), each with a "
        "seed stream of its own: no test question is ever a training question."))
    n: int | None = Field(None, ge=1, validate_default=True, description=(
        "Rows to generate (required for tasks); for other sources, keep at most this many (after shuffle)."))
    seed: int = Field(0, ge=0, description="Seed of the task generator and of the shuffle.")
    difficulty: int = Field(1, ge=min(ARITHMETIC_LEVELS), le=max(ARITHMETIC_LEVELS), description=(
        "task:arithmetic only: level 0 (one-digit +), 1 (two-digit +) .. 5 (four 4-digit numbers, + - *)."))
    imperfections: Imperfections | None = Field(None, description=(
        "Tasks only, for SFT data: shares of rows whose written target is imperfect, like cold-start traces "
        "written by people or models. The rows' gold `answer` stays right, so rewards still score the truth."))
    columns: dict[str, str] = Field(default_factory=dict, description=(
        "Files, stage outputs and hub datasets only: our column name -> the source's column name, e.g. "
        "{question: problem, answer: solution}. Unmapped columns are kept under their own names."))
    shuffle: bool = Field(False, description="Shuffle the rows (with `seed`) before `n` is applied.")
    config: str | None = Field(None, description="Hub datasets only: the configuration (subset), e.g. 'main'.")

    @property
    def kind(self) -> SourceKind:
        """What `source` names: "task", "adapter", "file", "stage" or "hub"."""
        return source_kind(self.source)

    @property
    def task(self) -> str:
        """The task name of a "task:NAME" source."""
        return self.source.removeprefix(TASK_PREFIX)

    def local_path(self, base_dir: Path | None = None) -> Path:
        """The file a "file" source names, relative paths taken from `base_dir`."""
        return resolve_local_path(self.source, base_dir)

    @field_validator("source")
    @classmethod
    def _check_source(cls, source: str, info: ValidationInfo) -> str:
        if not source.strip():
            raise ValueError("source is empty; give a task (task:NAME), gsm8k, math500, a file or a hub dataset")
        kind = source_kind(source)
        if kind == "task" and source.removeprefix(TASK_PREFIX) not in TASKS:
            raise ValueError(f"unknown task {source!r}; valid tasks: "
                             f"{', '.join(TASK_PREFIX + name for name in TASKS)}")
        if kind == "file":
            suffix = Path(source).suffix.lower()
            if suffix not in FILE_SUFFIXES:
                raise ValueError(f"local data file {source!r} has suffix {suffix or '(none)'!r}; "
                                 f"supported: {', '.join(FILE_SUFFIXES)}")
            base_dir = (info.context or {}).get("base_dir")
            path = resolve_local_path(source, base_dir)
            if (path.is_absolute() or base_dir is not None) and not path.is_file():
                raise ValueError(f"data file not found: {path}")
        return source

    @field_validator("split")
    @classmethod
    def _check_split(cls, split: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if source is not None and source_kind(source) == "adapter" and split not in ADAPTERS[source].splits:
            raise ValueError(f"{source} has the splits {list(ADAPTERS[source].splits)}, not {split!r}")
        return split

    @field_validator("n")
    @classmethod
    def _check_n(cls, n: int | None, info: ValidationInfo) -> int | None:
        source = info.data.get("source")
        if n is None and source is not None and source_kind(source) == "task":
            raise ValueError(f"n is required for {source}: how many rows to generate")
        return n

    @field_validator("difficulty")
    @classmethod
    def _check_difficulty(cls, difficulty: int, info: ValidationInfo) -> int:
        source = info.data.get("source")
        if source is not None and source != TASK_PREFIX + "arithmetic":
            raise ValueError(f"difficulty applies to task:arithmetic only, not to {source!r}")
        return difficulty

    @field_validator("imperfections")
    @classmethod
    def _check_imperfections(cls, imperfections, info: ValidationInfo):
        source = info.data.get("source")
        if imperfections is None or source is None:
            return imperfections
        if source_kind(source) != "task":
            raise ValueError(f"imperfections applies to synthetic tasks only, not to {source!r}")
        if imperfections.forgotten_carries and source != TASK_PREFIX + "arithmetic":
            raise ValueError(f"imperfections.forgotten_carries applies to task:arithmetic only, not to {source!r}")
        return imperfections

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, columns: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        source = info.data.get("source")
        if columns and source is not None and source_kind(source) not in ("file", "stage", "hub"):
            raise ValueError(f"columns applies to files, stage outputs and hub datasets only; {source!r} has "
                             "fixed columns")
        for ours, theirs in columns.items():
            if not ours.strip() or not theirs.strip():
                raise ValueError(f"column names must not be empty: {ours!r}: {theirs!r}")
        return columns

    @field_validator("config")
    @classmethod
    def _check_config(cls, config: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if config is not None and source is not None and source_kind(source) != "hub":
            raise ValueError(f"config applies to hub datasets only, not to {source!r}")
        return config
