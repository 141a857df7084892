"""Several learner ranks take the optimizer steps one learner takes on the whole batch, and never wait on
each other: a rank with no samples, or none of some mini-batch, still joins every collective.

The 2-rank runs use gloo ranks in spawned processes (torch.multiprocessing, no Ray), as in
tests/unit/test_learner_fsdp.py; the 1-rank reference runs in the test process.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, strategies as st

from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.actor import merge_rank_metrics
from grpo.learner.batching import TrainSample, rank_mini_batches, rank_shards
from grpo.learner.learner import DistInfo, Learner

MINI_BATCHES = 4
HANG_TIMEOUT_S = 300  # a rank stuck in a collective fails the test instead of hanging the suite


def _batches() -> list[list[TrainSample]]:
    """Two steps of the driver's kept samples: 7 (4 on rank 0, 3 on rank 1, so 4 mini-batches cut into
    parts of different sizes), then a batch of 4 of which mask_truncated_completions drops 3, leaving rank 1
    nothing."""
    g = torch.Generator().manual_seed(0)

    def sample(i: int, truncated: bool = False) -> TrainSample:
        return TrainSample(prompt_ids=torch.randint(5, 200, (4,), generator=g).tolist(),
                           completion_ids=torch.randint(5, 200, (6,), generator=g).tolist(),
                           advantage=float(i % 3) - 1.0, rollout_logprobs=[-1.0] * 6, truncated=truncated)

    first = [sample(i) for i in range(7)]
    second = [sample(0, truncated=True), sample(1, truncated=True), sample(2), sample(3, truncated=True)]
    return [first, [s for s in second if not s.truncated]]


def _learner(model_dir, strategy: str, world_size: int, rank: int = 0, port: int = 0) -> Learner:
    cfg = LearnerConfig(num_learners=world_size, strategy=strategy, lr=1e-2, token_budget=16)
    dist_info = DistInfo(rank=rank, world_size=world_size, init_method=f"tcp://127.0.0.1:{port}")
    return Learner(model_dir, cfg, AlgorithmConfig(beta=0.1), total_steps=2, mini_batches=MINI_BATCHES, seed=0,
                   dist_info=dist_info if world_size > 1 else None)


def _two_ranks(rank: int, port: int, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    for strategy in ("ddp", "fsdp2"):
        learner = _learner(model_dir, strategy, 2, rank, port)
        metrics = []
        for batch in _batches():
            shard = rank_shards(batch, 2)[rank]
            metrics.append(learner.train(shard, len(batch)))
        weights = learner.gather_full_state_dict_on_rank0()  # a collective under fsdp2: rank 1 joins, rank 0 keeps
        torch.save({"metrics": metrics, "weights": weights}, Path(out) / f"{strategy}-rank{rank}.pt")
    learner.close()


def _spawn_two_ranks(model_dir: Path, out: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = mp.start_processes(_two_ranks, args=(port, str(model_dir), str(out)), nprocs=2, join=False,
                               start_method="spawn")
    try:
        for _ in range(HANG_TIMEOUT_S):
            if ranks.join(timeout=1):
                return
        pytest.fail(f"the learner ranks did not finish within {HANG_TIMEOUT_S} s (a rank waits in a collective)")
    finally:
        for process in ranks.processes:
            if process.is_alive():
                process.kill()


def test_two_ranks_with_uneven_and_empty_shares_match_one_rank(tiny_qwen2_dir, tmp_path):
    _spawn_two_ranks(tiny_qwen2_dir, tmp_path)
    # Every sample is a micro-batch of its own and a mini-batch holds at most 2, one per rank: the ranks' sum
    # of its 2 gradients is the one learner's sum, bitwise, when both run their matmuls on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _learner(tiny_qwen2_dir, "ddp", 1)
        single_metrics = [single.train(batch) for batch in _batches()]
        single_weights = single.gather_full_state_dict_on_rank0()
    finally:
        torch.set_num_threads(threads)
    initial = _learner(tiny_qwen2_dir, "ddp", 1).gather_full_state_dict_on_rank0()
    assert max(float((single_weights[k] - initial[k]).abs().max()) for k in initial) > 1e-3  # steps were taken

    for strategy in ("ddp", "fsdp2"):
        ranks = [torch.load(tmp_path / f"{strategy}-rank{r}.pt", weights_only=False) for r in range(2)]
        weights = ranks[0]["weights"]
        assert weights.keys() == single_weights.keys()
        assert all(torch.equal(weights[k], single_weights[k]) for k in weights), strategy
        for step, expected in enumerate(single_metrics):
            merged = merge_rank_metrics([ranks[r]["metrics"][step] for r in range(2)])
            for key in ("loss/policy", "loss/kl"):
                # the same terms, added in another order
                assert merged[key] == pytest.approx(expected[key], rel=1e-6), (strategy, step, key)
        assert "loss/policy" not in ranks[1]["metrics"][1]  # rank 1 held no samples at the second step


@given(global_count=st.integers(0, 40), parts=st.integers(1, 8), world_size=st.integers(1, 4))
def test_rank_mini_batches_cut_the_batch_as_one_rank_does(global_count, parts, world_size):
    batch = list(range(global_count))
    one_rank = rank_mini_batches(batch, parts, 0, 1, global_count)
    assert [i for part in one_rank for i in part] == batch and len(one_rank) <= parts
    shares = [rank_mini_batches(shard, parts, r, world_size, global_count)
              for r, shard in enumerate(rank_shards(batch, world_size))]
    assert all(len(s) == len(one_rank) for s in shares)  # every rank joins every mini-batch
    for k, part in enumerate(one_rank):
        assert sorted(i for s in shares for i in s[k]) == part


def test_rank_mini_batches_refuses_a_share_larger_than_the_rank_holds():
    with pytest.raises(ValueError, match="more than its share"):
        rank_mini_batches([0, 1, 2], 2, 1, 2, 4)


def test_merge_rank_metrics_adds_loss_shares_and_averages_the_rest():
    merged = merge_rank_metrics([{"loss/policy": 0.25, "entropy": 2.0, "learner/grad_norm": 1.5},
                                 {"learner/grad_norm": 1.5}, {"loss/policy": -0.5, "entropy": 4.0,
                                                              "learner/grad_norm": 1.5}])
    assert merged == {"loss/policy": -0.25, "entropy": 3.0, "learner/grad_norm": 1.5}
