"""Atomic checkpoint directories: written under a temporary name, fsynced, then renamed into place.

A checkpoint directory is complete if and only if it exists under its final name, so a run killed while
writing one resumes from the previous checkpoint.
"""

from __future__ import annotations

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
    return json.loads((checkpoint / "state.json").read_text())["step"]


def resume_step(root: Path) -> int:
    """The step of the latest complete checkpoint under `root`, where a rerun resumes (0: none)."""
    latest = latest_checkpoint(root)
    return checkpoint_step(latest) if latest else 0


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
