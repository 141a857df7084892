"""Ray edge of the learner: one actor per data-parallel rank, each wrapping a plain `Learner`.

The driver makes whole-model calls (weight sync, saves) on rank 0 only. Under `strategy: fsdp2`
those are collectives over every rank, so rank 0 has its peers join each one and drops their results.
"""

from __future__ import annotations

import socket

import ray

from grpo.learner.learner import DistInfo, Learner


class LearnerHost:
    """Constructed empty so that rank 0 can report a rendezvous address before any rank builds its model."""

    def __init__(self, num_threads: int):
        import torch

        torch.set_num_threads(max(1, num_threads))
        self.learner: Learner | None = None
        self.peers: list = []  # the other ranks' actors, on rank 0 only

    def rendezvous_address(self) -> str:
        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ip}:{port}"

    def setup(self, rank: int, world_size: int, init_method: str | None, **learner_kwargs) -> None:
        learner_kwargs["dist_info"] = DistInfo(rank=rank, world_size=world_size, init_method=init_method)
        self.learner = Learner(**learner_kwargs)

    def set_peers(self, peers: list) -> None:
        self.peers = peers

    def _call_with_peers_if_sharded(self, method: str, *args):
        """Rank 0's `method(*args)`. Under fsdp2 it is a collective, so every other rank calls it too (their
        results are dropped); otherwise rank 0 alone calls it."""
        joined = [getattr(peer, method).remote(*args) for peer in self.peers] if self.learner.sharded else []
        result = getattr(self.learner, method)(*args)
        ray.get(joined)
        return result

    def train(self, samples, global_num_samples):
        return self.learner.train(samples, global_num_samples)

    def compute_logprobs(self, samples):
        """The learner's log-probs of `samples` under the sampling distribution: what a weight-sync parity check
        compares with the engine's (tests/integration/test_real_model.py does, through Ray)."""
        return self._call_with_peers_if_sharded("compute_logprobs", samples)

    def gather_full_state_dict_on_rank0(self):
        return self._call_with_peers_if_sharded("gather_full_state_dict_on_rank0")

    def trainable_names(self):
        return self.learner.trainable_names()

    def save(self, directory: str) -> None:
        self._call_with_peers_if_sharded("save", directory)

    def save_model(self, directory: str) -> None:
        self._call_with_peers_if_sharded("save_model", directory)

    def load_trainer_state(self, directory: str) -> None:
        self.learner.load_trainer_state(directory)

    def load_adapter(self, directory: str) -> None:
        self.learner.load_adapter(directory)

    def close(self) -> None:
        if self.learner is not None:
            self.learner.close()


def merge_rank_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One step's learner metrics from every rank's `train` result. Each rank's loss/* terms are its share
    of the batch loss (normalised by the global counts), so they add up; every other metric is averaged
    over the ranks that report it (a rank that held no samples reports no loss statistics)."""
    merged: dict[str, float] = {}
    for key in dict.fromkeys(k for metrics in per_rank for k in metrics):
        values = [metrics[key] for metrics in per_rank if key in metrics]
        merged[key] = sum(values) if key.startswith("loss/") else sum(values) / len(values)
    return merged


def make_learners(num_learners: int, num_cpus: float, num_gpus: float, **learner_kwargs) -> list:
    """Start `num_learners` ranks; with more than one, they form a gloo (CPU) or NCCL (GPU) process group."""
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(LearnerHost)
    actors = [remote.remote(num_threads=int(max(1, num_cpus))) for _ in range(num_learners)]
    init_method = ray.get(actors[0].rendezvous_address.remote()) if num_learners > 1 else None
    ray.get([
        actor.setup.remote(rank, num_learners, init_method, **learner_kwargs)
        for rank, actor in enumerate(actors)
    ])
    ray.get(actors[0].set_peers.remote(actors[1:]))
    return actors
