"""Session-wide fixtures. Expensive things (tiny models, vLLM engines, the Ray cluster) are built once per
test session and shared; they live in the fixtures_*.py modules beside this file."""

from fixtures_models import *  # noqa: F401,F403  tiny model directories
from fixtures_engines import *  # noqa: F401,F403  shared vLLM engines


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device: skipped, saying so, where torch sees none."""
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False here); "
                                   "scripts/gpu_check.sh runs these on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
