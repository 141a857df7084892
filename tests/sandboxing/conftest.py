"""Fixtures for the sandbox tests: one shared pool per session, and the HumanEval rows."""

from __future__ import annotations

import gzip
import json

import pytest
from sandbox_checks import HUMANEVAL

from sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox(workers=2) as pool:
        yield pool


@pytest.fixture(scope="session")
def humaneval_rows() -> list[dict]:
    if not HUMANEVAL.exists():
        pytest.skip(f"HumanEval is not at {HUMANEVAL} (public data, see shared/data)")
    with gzip.open(HUMANEVAL, "rt") as f:
        return [json.loads(line) for line in f]
