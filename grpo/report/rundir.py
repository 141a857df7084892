"""Reading a run directory (the layout of pipelines/runner.py) into plain data, and telling its state.

    <run_dir>/recipe.yaml, run_state.json, stages/<name>/{metrics.jsonl, samples.jsonl, results.json,
    checkpoints/step-NNNNNN/, model/}

Everything here tolerates partial runs: a stage that never started, a metrics file whose last line was
cut by a crash, a run directory with nothing but its recipe. Only input that cannot be a run (no such
directory, a run_state.json that is not JSON) raises a UserError.

Run states (`grpo runs`), first rule that applies:
    running    a stage is running and the process that runs it (run_state "pid") is alive
    failed     a stage failed and left no checkpoint to continue from
    resumable  a stage failed or was interrupted with checkpoints, or stages are left to run:
               `grpo run` on the same recipe continues it
    finished   every stage of the recipe finished
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grpo.checkpoint import latest_checkpoint
from common.errors import UserError

STATE_FILE = "run_state.json"


@dataclass
class StageView:
    """One stage as the run directory shows it; `status` is "pending" when it has not started."""

    name: str
    type: str
    status: str
    directory: Path
    record: dict = field(default_factory=dict)  # its entry in run_state.json
    total_steps: int | None = None  # RL stages: `steps` from the resolved recipe

    @property
    def last_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.directory / "checkpoints")

    def metrics(self) -> list[dict]:
        return read_jsonl(self.directory / "metrics.jsonl")

    def samples(self) -> list[dict]:
        return read_jsonl(self.directory / "samples.jsonl")

    def results(self) -> dict:
        """The eval stage's table {model_label: {"pass@1": x, ...}}; {} when it has none yet."""
        path = self.directory / "results.json"
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError:
            return {}

    def last_step(self) -> int | None:
        """The last step whose metrics were logged (read from the end of the file, which may be large)."""
        record = _last_jsonl_record(self.directory / "metrics.jsonl")
        return int(record["step"]) if record and "step" in record else None


@dataclass
class RunView:
    directory: Path
    name: str
    state: dict  # run_state.json as written by the runner ({} before the first stage starts)
    stages: list[StageView]


def load_run(run_dir: str | Path) -> RunView:
    """Read a run directory: the recipe's stages in order, with their status from run_state.json."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    state_path, recipe_path = run_dir / STATE_FILE, run_dir / "recipe.yaml"
    if not state_path.exists() and not recipe_path.exists():
        raise UserError(f"{run_dir}: not a run directory (it has neither {STATE_FILE} nor recipe.yaml)")
    state: dict = {}
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{state_path}: not valid JSON ({exc})") from None
    recipe = _read_recipe(recipe_path)
    records = state.get("stages", {})
    planned = [(s.get("name"), s.get("type"), s.get("steps")) for s in recipe.get("stages", []) if s.get("name")]
    # Stages recorded but no longer in the recipe (renamed, or a recipe.yaml lost) still belong in the report.
    planned += [(name, rec.get("type"), None) for name, rec in records.items()
                if name not in {p[0] for p in planned}]
    stages = [
        StageView(name=name, type=stype or records.get(name, {}).get("type", "?"),
                  status=records.get(name, {}).get("status", "pending"), directory=run_dir / "stages" / name,
                  record=records.get(name, {}), total_steps=steps if isinstance(steps, int) else None)
        for name, stype, steps in planned
    ]
    return RunView(directory=run_dir, name=state.get("recipe") or recipe.get("name") or run_dir.name,
                   state=state, stages=stages)


def run_status(run: RunView) -> tuple[str, str]:
    """(state, one-line detail) by the rules in this module's docstring."""
    running = [s for s in run.stages if s.status == "running"]
    failed = [s for s in run.stages if s.status == "failed"]
    pending = [s for s in run.stages if s.status == "pending"]
    if running and _process_alive(run.state):
        return "running", f"stage {running[0].name}" + _progress(running[0], "at")
    if failed:
        stage = failed[0]
        where = (f"stage {stage.name} failed{_progress(stage, 'after')}: "
                 f"{stage.record.get('error', 'no error recorded')}")
        ckpt = stage.last_checkpoint
        return ("resumable", f"{where}; resumes from {ckpt.name}") if ckpt else ("failed", where)
    if running:
        ckpt = running[0].last_checkpoint
        resume = f"; resumes from {ckpt.name}" if ckpt else ""
        return "resumable", f"stage {running[0].name} interrupted{_progress(running[0], 'after')}{resume}"
    if pending or not run.stages:
        done = len(run.stages) - len(pending)
        return "resumable", f"{done}/{len(run.stages)} stages finished"
    return "finished", f"{len(run.stages)} stages finished"


def find_runs(root: str | Path, max_depth: int = 3) -> list[Path]:
    """Run directories (holding run_state.json) at or below `root`, not looking inside a run itself."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    found, frontier = [], [root]
    for _ in range(max_depth + 1):
        below = []
        for directory in frontier:
            if (directory / STATE_FILE).exists():
                found.append(directory)
            else:
                below += sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        frontier = below
    return sorted(found)


def read_jsonl(path: Path) -> list[dict]:
    """JSON lines, skipping a line a crash cut short (the writers flush whole lines, so only the last can be)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _last_jsonl_record(path: Path, window: int = 65536) -> dict | None:
    if not path.exists():
        return None
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - window))
        lines = f.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def _read_recipe(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    return recipe if isinstance(recipe, dict) else {}


def _progress(stage: StageView, preposition: str) -> str:
    """" after step 37/100" (the last step logged); "" for stages that log no steps."""
    step = stage.last_step()
    if step is None and stage.type != "rl":
        return ""
    total = f"/{stage.total_steps}" if stage.total_steps else ""
    return f" {preposition} step {step or 0}{total}"


def _process_alive(state: dict) -> bool:
    """Whether the runner that wrote run_state ("pid", and "host" when recorded) still runs."""
    pid = state.get("pid")
    if not isinstance(pid, int):
        return False
    if state.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process cannot be checked from here: trust the state file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
