"""What a stage receives from the runner and what it hands back, and how a stage's model references resolve."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common.errors import UserError
from grpo.checkpoint import atomic_directory
from grpo.config import ModelSpec, Recipe
from grpo.recipe import looks_like_hub_id


@dataclass
class StageContext:
    recipe: Recipe
    run_dir: Path
    stage_dir: Path  # everything the stage writes goes here
    base_dir: Path  # the recipe's folder: relative data paths resolve against it
    model_dir: Path  # the model this stage starts from
    outputs: dict[str, Path] = field(default_factory=dict)  # models of earlier stages, by stage name
    echo: Callable[[str], None] = print
    config: dict = field(default_factory=dict)  # the stage's resolved config, flattened (pipelines/runner.py)


@dataclass
class StageResult:
    model: Path | None  # the model the stage produced (None for eval and rejection sampling)
    summary: dict = field(default_factory=dict)  # small figures for the run table (accuracy, loss, ...)
    dataset: Path | None = None  # the dataset the stage wrote (rejection sampling)


def resolve_model_path(value: str, base_dir: Path, where: str):
    """A local model directory (relative to the recipe's folder) or, if there is none, a hub id as given."""
    path = Path(value) if Path(value).is_absolute() else base_dir / value
    if (path / "config.json").exists():
        return path
    if looks_like_hub_id(value):
        return value  # transformers and vLLM fetch it where a hub is reachable
    raise UserError(f"{where}: no Hugging Face model (config.json) in {path}")


def resolve_model_reference(ref: str | None, outputs: dict[str, Path], current: Path, base_dir: Path) -> Path:
    """A stage's `model:`: None -> `current` (the previous stage's model), "@name" -> that stage's output,
    else a directory (relative to the recipe's folder)."""
    if ref is None:
        return current
    if ref.startswith("@"):
        name = ref[1:]
        if name not in outputs:
            raise UserError(f"stage model '{ref}': stage '{name}' produced no model")
        return outputs[name]
    path = Path(ref)
    return path if path.is_absolute() else base_dir / path


def materialize_model(spec: ModelSpec, base_dir: Path, build_dir: Path, where: str, echo: Callable[[str], None] = print):
    """The model directory of a ModelSpec: `path` as it is (or a hub id), `gguf` and `package` converted once
    into the conversion cache, `make` built into `build_dir` (unless it is already there)."""
    from grpo.models.gguf_import import cached_conversion, packaged_gguf

    if spec.path:
        return resolve_model_path(spec.path, base_dir, where=f"{where}.path")
    if spec.gguf or spec.package:
        gguf = packaged_gguf(spec.package) if spec.package else (
            Path(spec.gguf) if Path(spec.gguf).is_absolute() else base_dir / spec.gguf)
        return cached_conversion(gguf, echo=echo)
    from grpo.models.factory import make_model

    if not (build_dir / "config.json").exists():
        echo(f"[model] building {spec.make} (seed {spec.seed})")
        with atomic_directory(build_dir) as tmp:
            make_model(spec.make, tmp, seed=spec.seed, dtype=spec.dtype, overrides=spec.overrides or None)
    return build_dir
