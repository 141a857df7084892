"""What a stage receives from the runner and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grpo.config import Recipe


@dataclass
class StageContext:
    recipe: Recipe
    run_dir: Path
    stage_dir: Path  # everything the stage writes goes here
    base_dir: Path  # the recipe's folder: relative data paths resolve against it
    model_dir: Path  # the model this stage starts from
    outputs: dict[str, Path] = field(default_factory=dict)  # models of earlier stages, by stage name
    echo: Callable[[str], None] = print


@dataclass
class StageResult:
    model: Path | None  # the model the stage produced (None for eval and rejection sampling)
    summary: dict = field(default_factory=dict)  # small figures for the run table (accuracy, loss, ...)
    dataset: Path | None = None  # the dataset the stage wrote (rejection sampling)
