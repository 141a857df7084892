"""`learner.strategy: fsdp2` against the ddp path, on 2 gloo ranks (torch.multiprocessing, no Ray).

Rank 0 gets one more micro-batch than rank 1, so the placeholder passes that keep FSDP2's collectives in step
are exercised; beta > 0 shards the reference too; max_grad_norm is low enough that clipping acts.
Each rank process writes what rank 0 saw to a file and the test asserts on it here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from pydantic import ValidationError

from grpo.config import AlgorithmConfig, LearnerConfig, LoraConfig
from grpo.learner.batching import TrainSample
from grpo.learner.learner import DistInfo, Learner

# The clipped gradients carry the clip coefficient max_grad_norm / norm, and the float32 norm of ~5e5 entries
# depends on the summation order (sharded: per shard, then across ranks): measured, each tensor's largest
# difference is 4.8e-6 (tiny-qwen2) and 2.3e-6 (tiny-deepseek-v3) of its largest entry, as are the norms.
# The norm is compared before clipping too: that catches a scale error (averaged instead of summed), which
# clipping, and AdamW's step, would hide.
GRAD_RTOL = 2e-5
# AdamW's first step, lr * g / (|g| + eps), magnifies a gradient difference by up to lr / eps = 1e6 where g is
# about 0: measured largest weight difference 5.5e-7 (tiny-qwen2) and 9.3e-7 (tiny-deepseek-v3) after a step
# of lr = 1e-2; 1e-5 is 0.1% of that step.
WEIGHT_ATOL = 1e-5
MAX_GRAD_NORM = 0.005  # below both models' gradient norms here (0.0096, 0.044): clipping acts


def _samples(step: int, n: int = 7) -> list[TrainSample]:
    """n samples of 10 tokens: with a 16-token budget each is a micro-batch of its own."""
    g = torch.Generator().manual_seed(step)
    return [TrainSample(prompt_ids=torch.randint(5, 200, (4,), generator=g).tolist(),
                        completion_ids=torch.randint(5, 200, (6,), generator=g).tolist(),
                        advantage=float(i % 3) - 1.0, rollout_logprobs=[-1.0] * 6) for i in range(n)]


def _learner(model_dir, strategy: str, rank: int, port: int, beta: float = 0.1, **learner) -> Learner:
    cfg = LearnerConfig(num_learners=2, strategy=strategy, lr=1e-2, token_budget=16,
                        max_grad_norm=MAX_GRAD_NORM, **learner)
    return Learner(model_dir, cfg, AlgorithmConfig(beta=beta), total_steps=2, seed=0,
                   dist_info=DistInfo(rank=rank, world_size=2, init_method=f"tcp://127.0.0.1:{port}"))


def _train(learner: Learner, step: int, rank: int) -> dict[str, float]:
    samples = _samples(step)
    return learner.train(samples[rank::2], len(samples))  # 4 samples on rank 0, 3 on rank 1


def _grads(learner: Learner) -> dict[str, torch.Tensor]:
    """The (clipped) gradients of the last update, gathered when sharded (a collective)."""
    grads = {}
    for name, p in learner.model.named_parameters():
        grads[name] = p.grad.full_tensor() if learner.sharded else p.grad
    return grads


def _qwen2_ranks(rank: int, port: int, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    seen = {}
    ddp = _learner(model_dir, "ddp", rank, port)
    seen["initial"] = ddp.gather_full_state_dict_on_rank0()
    seen["ddp_metrics"] = _train(ddp, 0, rank)
    seen["ddp_grads"] = _grads(ddp)
    seen["ddp"] = ddp.gather_full_state_dict_on_rank0()

    sharded = _learner(model_dir, "fsdp2", rank, port)
    seen["fsdp_metrics"] = _train(sharded, 0, rank)
    seen["fsdp_grads"] = _grads(sharded)
    seen["fsdp"] = sharded.gather_full_state_dict_on_rank0()
    sharded.save(Path(out) / "checkpoint")

    # beta 0: Learner loads its reference from the directory it loads the policy from, so one built from a
    # checkpoint would take the checkpointed policy as its reference, and the KL term would differ.
    uninterrupted = _learner(model_dir, "fsdp2", rank, port, beta=0.0)
    _train(uninterrupted, 0, rank)
    uninterrupted.save(Path(out) / "resume")
    _train(uninterrupted, 1, rank)
    seen["fsdp_step2"] = uninterrupted.gather_full_state_dict_on_rank0()
    resumed = _learner(Path(out) / "resume" / "model", "fsdp2", rank, port, beta=0.0)
    resumed.load_trainer_state(Path(out) / "resume")
    _train(resumed, 1, rank)
    seen["resumed_step2"] = resumed.gather_full_state_dict_on_rank0()
    if rank == 0:
        torch.save(seen, Path(out) / "seen.pt")
    resumed.close()


def _dsv3_ranks(rank: int, port: int, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    seen = {}
    for strategy in ("ddp", "fsdp2"):
        learner = _learner(model_dir, strategy, rank, port, router="aux_loss", router_aux_loss_coef=0.01)
        seen[f"{strategy}_metrics"] = _train(learner, 0, rank)
        seen[f"{strategy}_grads"] = _grads(learner)
        seen[strategy] = learner.gather_full_state_dict_on_rank0()
    if rank == 0:
        torch.save(seen, Path(out) / "seen.pt")
    learner.close()


def _run_two_ranks(worker, model_dir: Path, out: Path) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(port, str(model_dir), str(out)), nprocs=2)
    return torch.load(out / "seen.pt", weights_only=False)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _assert_same_grads(sharded: dict[str, torch.Tensor], ddp: dict[str, torch.Tensor]) -> None:
    assert sharded.keys() == ddp.keys()
    for name, grad in ddp.items():
        assert float((sharded[name] - grad).abs().max()) <= GRAD_RTOL * float(grad.abs().max()), name


def test_fsdp2_update_sync_save_and_resume_match_ddp(tiny_qwen2_dir, tmp_path):
    from safetensors.torch import load_file

    seen = _run_two_ranks(_qwen2_ranks, tiny_qwen2_dir, tmp_path)
    ddp, sharded = seen["ddp"], seen["fsdp"]
    assert _max_diff(ddp, seen["initial"]) > 1e-3  # the update moved the weights far beyond the tolerance
    # Same names and full shapes as the ddp sync (what the rollout engine loads), plain tensors, same values.
    assert all(type(v) is torch.Tensor and v.shape == ddp[k].shape for k, v in sharded.items())
    _assert_same_grads(seen["fsdp_grads"], seen["ddp_grads"])
    assert _max_diff(sharded, ddp) <= WEIGHT_ATOL
    assert seen["ddp_metrics"]["learner/grad_norm"] > MAX_GRAD_NORM  # clipping acted
    assert seen["fsdp_metrics"]["learner/grad_norm"] == pytest.approx(seen["ddp_metrics"]["learner/grad_norm"],
                                                                      rel=GRAD_RTOL)
    for key in ("loss/policy", "loss/kl"):
        assert seen["fsdp_metrics"][key] == seen["ddp_metrics"][key]  # rank 0's own samples, same weights

    # save_model (inside save) wrote exactly the weights gather_full_state_dict_on_rank0 returned (the tied head once).
    saved = load_file(str(tmp_path / "checkpoint" / "model" / "model.safetensors"))
    assert set(sharded) - set(saved) <= {"lm_head.weight"}
    assert all(torch.equal(saved[k], sharded[k]) for k in saved)

    # Resume from the checkpoint: the second update is bitwise the uninterrupted run's (AdamW's restored
    # moments are part of that step: with fresh ones it would differ).
    assert _max_diff(seen["resumed_step2"], seen["fsdp_step2"]) == 0.0


def test_fsdp2_moe_update_matches_ddp(tiny_dsv3_dir, tmp_path):
    seen = _run_two_ranks(_dsv3_ranks, tiny_dsv3_dir, tmp_path)
    _assert_same_grads(seen["fsdp2_grads"], seen["ddp_grads"])
    assert _max_diff(seen["fsdp2"], seen["ddp"]) <= WEIGHT_ATOL
    assert seen["fsdp2_metrics"]["learner/grad_norm"] == pytest.approx(seen["ddp_metrics"]["learner/grad_norm"],
                                                                       rel=GRAD_RTOL)
    assert seen["fsdp2_metrics"]["moe/aux_loss"] == seen["ddp_metrics"]["moe/aux_loss"]


def test_fsdp2_config_errors_name_the_fix():
    with pytest.raises(ValidationError, match="num_learners >= 2"):
        LearnerConfig(strategy="fsdp2")
    with pytest.raises(ValidationError, match="use ddp for LoRA"):
        LearnerConfig(strategy="fsdp2", num_learners=2, lora=LoraConfig())
