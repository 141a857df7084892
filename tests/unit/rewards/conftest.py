"""Fixtures of the reward tests: the math checker's worker processes are shared and stopped at the end."""

from pathlib import Path

import pytest

from rewards.accuracy import CHECKER

REPO_ROOT = Path(__file__).resolve().parents[3]
# Public datasets live beside the repository, never vendored into it (design.md).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _stop_math_workers():
    yield
    CHECKER.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public datasets folder {SHARED_DATA} is absent")
    return SHARED_DATA
