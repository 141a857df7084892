"""Tiny model directories built once per test session (grpo.models.factory).

Each fixture is a Hugging Face directory (config.json, model.safetensors, tokenizer with a chat template,
generation_config.json) made from a default preset with seed 0, so every test sees the same weights.
"""

from pathlib import Path

import pytest

from grpo.models.factory import make_model


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dense Qwen2 (2 layers, hidden 128, tied embeddings), float32."""
    return make_model("tiny-qwen2", tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_dsv3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeepSeek-V3 (MLA, shared + routed experts, aux-loss-free expert bias), float32."""
    return make_model("tiny-deepseek-v3", tmp_path_factory.mktemp("tiny-deepseek-v3"))
