"""Atomic checkpoint directories: written under a temporary name, fsynced, then renamed into place.

A checkpoint directory is complete if and only if it exists under its final name, so a run killed while
writing one resumes from the previous checkpoint.

A checkpoint's state.json also records the stage's resolved config (flattened, with its fingerprint), so a
resume can tell what changed since and refuse a change that would make the continued run another run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

PREFIX = "step-"


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:06d}"


@contextmanager
def atomic_directory(final: Path):
    """Yield a temporary directory; on success it replaces `final` atomically."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def latest_checkpoint(root: Path) -> Path | None:
    if not root.exists():
        return None
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    return done[-1] if done else None


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a checkpoint directory was written at (its state.json)."""
    return checkpoint_state(checkpoint)["step"]


def checkpoint_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "state.json").read_text())


def resume_step(root: Path) -> int:
    """The step of the latest complete checkpoint under `root`, where a rerun resumes (0: none)."""
    latest = latest_checkpoint(root)
    return checkpoint_step(latest) if latest else 0


# Keys that may differ between a stage's checkpoint (or finished run) and its resume: `steps`, to extend a
# run (with a decaying lr_schedule the remaining updates follow the new length), `checkpoint_every`, and
# where the stage runs and how finely it slices its work, which change no result beyond float rounding.
RESUMABLE_KEYS = frozenset({
    "steps", "checkpoint_every",
    "rollout.num_workers", "rollout.num_cpus_per_worker", "rollout.num_gpus_per_worker", "rollout.kv_cache_gib",
    "rollout.gpu_memory_utilization", "gradient_accumulation_steps", "gradient_checkpointing",
    "learner.num_learners", "learner.num_cpus_per_learner", "learner.num_gpus_per_learner",
    "learner.token_budget", "learner.logprob_chunk_size", "learner.gradient_checkpointing",
    "learner.reference_offload",
})


def flat_config(tree: dict, prefix: str = "") -> dict:
    """{"learner": {"lr": 1e-5}} -> {"learner.lr": 1e-5}; lists stay values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_changes(old: dict, new: dict) -> dict[str, tuple]:
    """{key: (old, new)} for the keys both configs have and that differ. A key only one side has is a field
    added to (or removed from) the schema since, not a change the user made."""
    return {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys()) if old[k] != new[k]}


def fixed_changes(old: dict, new: dict) -> dict[str, tuple]:
    """The changes (config_changes) to keys outside RESUMABLE_KEYS: those that make a stage's earlier results,
    finished or checkpointed, not the ones this config would give."""
    return {k: v for k, v in config_changes(old, new).items() if k not in RESUMABLE_KEYS}


def describe_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{key} {json.dumps(a)} -> {json.dumps(b)}" for key, (a, b) in changes.items())


def write_json(path: Path, data: dict) -> None:
    """Small JSON state files (run state, stage state) also go through a rename, never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
