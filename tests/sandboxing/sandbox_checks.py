"""Checks shared by the sandbox tests: that nothing a run started outlives it."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import Sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
HUMANEVAL = REPO_ROOT.parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
# Where a program that escaped its private /tmp or read-only root would leave a file.
HOST_DIRS = ["/tmp", "/dev/shm", "/var/tmp", "/etc", "/root", "/"]


def assert_nothing_left(pool: Sandbox, token: str = "") -> None:
    """No process running as the pool's sandbox uids, no child of its fork servers (a supervisor, or
    anything reparented to them), and no file named after `token` where an escaped program could write."""
    resources = pool.resources()
    assert (resources["sandbox_processes"], resources["server_children"]) == (0, 0), resources
    if token:
        for directory in HOST_DIRS:
            assert not [name for name in os.listdir(directory) if token in name], directory
