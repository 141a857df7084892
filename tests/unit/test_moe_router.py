"""The router probe works for every transformers MoE family with the shared router interface: DeepSeek-V3
(sigmoid scores, expert bias; tests/unit/test_learner.py) and the softmax routers of Qwen2-MoE and Mixtral."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner
from grpo.learner.moe import RouterProbe, balance_loss, routing_probabilities

SHAPES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "intermediate_size": 96, "max_position_embeddings": 256, "num_experts_per_tok": 2}
FAMILIES = {
    "qwen2_moe": {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32},
    "mixtral": {"num_local_experts": 4},
}


def test_balance_loss_is_one_when_uniform_and_grows_when_skewed():
    uniform = torch.full((8, 4), 0.25)
    assert balance_loss(uniform, torch.tensor([4.0, 4.0, 4.0, 4.0]), top_k=2) == pytest.approx(1.0)
    skewed = torch.tensor([[0.5, 0.5, 0.0, 0.0]]).repeat(8, 1)
    assert balance_loss(skewed, torch.tensor([8.0, 8.0, 0.0, 0.0]), top_k=2) == pytest.approx(2.0)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def moe_dir(request, tiny_qwen2_dir, tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    config = AutoConfig.for_model(request.param, vocab_size=len(tokenizer), **SHAPES, **FAMILIES[request.param])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_softmax_routers_are_found_and_scored_with_softmax(moe_dir):
    model = AutoModelForCausalLM.from_pretrained(moe_dir)
    probe = RouterProbe(model, with_aux_loss=True)
    assert len(probe.routers) == SHAPES["num_hidden_layers"]
    router = probe.routers[0][1]
    logits = torch.randn(5, 4)
    torch.testing.assert_close(routing_probabilities(router, logits), torch.softmax(logits, -1))
    probe.close()


def test_learner_logs_expert_load_and_adds_the_balance_loss(moe_dir):
    learner = Learner(moe_dir, LearnerConfig(lr=1e-3, router="aux_loss", router_aux_loss_coef=0.01),
                      AlgorithmConfig(), total_steps=1, seed=0)
    g = torch.Generator().manual_seed(0)
    samples = [TrainSample(prompt_ids=torch.randint(5, 200, (4,), generator=g).tolist(),
                           completion_ids=torch.randint(5, 200, (3,), generator=g).tolist(),
                           advantage=float(i % 2) - 0.5, rollout_logprobs=[-1.0] * 3) for i in range(4)]
    gate = learner.router.routers[0][1].weight
    before = gate.detach().clone()
    metrics = learner.train(samples)
    loads = [k for k in metrics if k.startswith("moe/max_load/")]
    assert len(loads) == SHAPES["num_hidden_layers"] and all(metrics[k] >= 1.0 for k in loads)
    assert 0.0 < metrics["moe/aux_loss"] < 4.0  # between perfectly balanced (1) and one expert only (E = 4)
    assert not torch.equal(gate.detach(), before)  # the router is trained with the policy
