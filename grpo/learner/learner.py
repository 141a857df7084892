"""The policy learner: a plain class (usable in-process) that the Ray actor in grpo/learner/actor.py wraps.

It holds the transformers policy (dense or DeepSeek-V3 MoE + MLA, optionally LoRA through peft), the frozen
reference (only when beta > 0), AdamW and the LR schedule. `train` runs num_iterations x mini_batches
optimizer steps over one batch of scored samples; micro-batches are packed by token budget and their
gradients accumulated; with several ranks, gradients are summed over gloo/NCCL (each rank normalises its
loss by the global counts, so the sum is the gradient of the whole batch). With `strategy: fsdp2` the policy
and the reference are sharded over the ranks (grpo/learner/fsdp.py) and FSDP2 sums the gradients itself.

Trained weights, their gradients and AdamW state are float32 whatever the model directory holds (the frozen
base of a LoRA policy stays in the directory's dtype: it is never updated). `precision: bf16` runs
every forward (and so its backward) under bfloat16 autocast: bfloat16 matmuls, float32 master weights, so
an update too small for bfloat16's 8-bit mantissa (lr 1e-6 on a weight of 1.0) still moves the weights.
Log-probs are those of the rollout's sampling distribution (`sampling`, grpo/learner/logprobs.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from grpo.algorithms.losses import PolicyLossConfig, policy_loss
from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner import fsdp
from grpo.learner.compute import autocast, enable_gradient_checkpointing
from grpo.learner.batching import TrainSample, collate, pack_by_token_budget, rank_mini_batches
from grpo.learner.logprobs import CompletionLogprobs, SamplingDistribution
from grpo.learner.moe import RouterProbe
from grpo.models.factory import DTYPES
from grpo.schedule import lr_lambda
from grpo.seeding import rng_state, seed_everything, set_rng_state



@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    init_method: str | None = None  # e.g. tcp://127.0.0.1:29500


def loss_config(algo: AlgorithmConfig, max_completion_length: int) -> PolicyLossConfig:
    return PolicyLossConfig(
        loss_type=algo.loss_type,
        epsilon=algo.epsilon,
        epsilon_high=algo.epsilon_high,
        dual_clip=algo.dual_clip,
        importance_sampling_level=algo.importance_sampling_level,
        beta=algo.beta,
        kl_estimator=algo.kl_estimator,
        kl_bound=algo.kl_bound,
        entropy_coef=algo.entropy_coef,
        max_completion_length=max_completion_length,
        tis_cap=algo.tis_cap,
    )


class Learner:
    def __init__(
        self,
        model_dir: str | Path,
        learner: LearnerConfig,
        algorithm: AlgorithmConfig,
        *,
        total_steps: int,
        num_iterations: int = 1,
        mini_batches: int = 1,
        max_completion_length: int = 256,
        seed: int = 0,
        dtype: str = "float32",
        sampling: SamplingDistribution = SamplingDistribution(),
        dist_info: DistInfo | None = None,
        reference_dir: str | Path | None = None,
    ):
        """`reference_dir`: the frozen reference policy (default `model_dir`). A resumed stage starts its policy
        from a checkpoint but keeps the reference of the stage's start, so it passes the original model here.
        `dtype`: the model's; only a LoRA policy's frozen base is held in it (peft keeps the adapters float32).
        `sampling`: the rollout's temperature, top-k and top-p; policy, pi_old and reference log-probs are all
        taken under it, so that they compare with the engine's (processed) sampling log-probs."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = learner
        self.algo = algorithm
        self.num_iterations = num_iterations
        self.mini_batches = mini_batches
        self.dist = dist_info or DistInfo()
        if self.dist.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, init_method=self.dist.init_method,
                                    rank=self.dist.rank, world_size=self.dist.world_size)
        seed_everything(seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() and learner.num_gpus_per_learner > 0 else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        weights_dtype = torch.float32 if learner.lora is None else DTYPES[dtype]  # float32: master weights
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=weights_dtype)
        self.sharded = learner.strategy == "fsdp2"
        if not self.sharded:  # fully_shard moves only each rank's shards to the device
            self.model.to(self.device)
        self.needs_reference = algorithm.beta > 0
        self.reference = None
        if learner.lora is not None:
            from peft import LoraConfig as PeftLoraConfig, get_peft_model

            lora = learner.lora
            self.model = get_peft_model(self.model, PeftLoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora.target_modules, task_type="CAUSAL_LM"))
        elif self.needs_reference:
            # With LoRA the reference is the same model with its adapters disabled: no second copy.
            # float32 like the policy: at the start both compute the same log-probs, and the KL term is 0.
            reference = AutoModelForCausalLM.from_pretrained(reference_dir or model_dir, dtype=torch.float32)
            reference.eval().requires_grad_(False)
            self.reference = CompletionLogprobs(reference, sampling)
            if learner.reference_offload:  # whole on the CPU, with either strategy
                self.reference.to("cpu")
            elif self.sharded:
                fsdp.shard(self.reference, self._mesh())
            else:
                self.reference.to(self.device)
        if learner.gradient_checkpointing:
            enable_gradient_checkpointing(self.model, adapters=learner.lora is not None)
        self.model.train()
        # Every log-prob pass goes through this module; under fsdp2 it is the root that FSDP2 hooks.
        self.policy = CompletionLogprobs(self.model, sampling)
        if self.sharded:
            fsdp.shard(self.policy, self._mesh())
        self.router = RouterProbe(self.model, with_aux_loss=learner.router == "aux_loss")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=learner.lr, weight_decay=learner.weight_decay)
        total_updates = max(1, total_steps * num_iterations * mini_batches)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda=lr_lambda(learner.lr_schedule, learner.warmup_steps, total_updates))
        self.loss_cfg = loss_config(algorithm, max_completion_length)
        self.updates = 0

    def _mesh(self):
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh(self.device.type, (self.dist.world_size,))

    # ------------------------------------------------------------------------------------ log-probs

    def _micro_batches(self, samples: list[TrainSample], model: torch.nn.Module) -> list[list[int]]:
        """Sample indices packed by token budget. Through a sharded model every forward and backward is a
        collective, so all ranks make the same number of passes: the ranks with fewer micro-batches get
        empty ones, which run on a placeholder sample and count for nothing."""
        plan = pack_by_token_budget(samples, self.cfg.token_budget)
        if fsdp.is_sharded(model):
            plan += [[]] * (fsdp.world_max(len(plan), self.device) - len(plan))
        return plan

    def _collate(self, samples: list[TrainSample]):
        placeholder = TrainSample(prompt_ids=[self.pad_id], completion_ids=[self.pad_id], advantage=0.0)
        return collate(samples or [placeholder], self.pad_id)

    @torch.no_grad()
    def _fill_logprobs(self, samples: list[TrainSample], attr: str, model: torch.nn.Module) -> None:
        for idx in self._micro_batches(samples, model):
            group = [samples[i] for i in idx]
            logp, _ = self._logprobs(model, self._collate(group), with_entropy=False)
            for row, s in enumerate(group):
                setattr(s, attr, logp[row, : len(s.completion_ids)].tolist())

    def _logprobs(self, model: CompletionLogprobs, mb, with_entropy: bool):
        device = next(model.parameters()).device
        # Autocast covers the forward only; the backward runs each op in the dtype its forward used, and
        # checkpointed chunks and layers recompute under the autocast state they were saved with.
        with autocast(self.cfg.precision, device.type):
            return model(mb.input_ids.to(device), mb.attention_mask.to(device), mb.prompt_lengths,
                         mb.completion_mask.shape[1], self.cfg.logprob_chunk_size, with_entropy)

    def compute_logprobs(self, samples: list[TrainSample]) -> list[list[float]]:
        """Current-policy log-probs of each sample's completion (eval mode, no grad), as the loss computes them:
        what the parity tests compare with the engine's and across precisions (test_rollout_sync.py,
        test_learner_precision.py; test_real_model.py through LearnerHost). Under fsdp2 every rank must call it. The RL loop needs no such call:
        train() measures the same gap every step (rollout/logprob_mismatch)."""
        self.model.eval()
        self._fill_logprobs(samples, "old_logprobs", self.policy)
        self.model.train()
        return [s.old_logprobs for s in samples]

    # ------------------------------------------------------------------------------------ training

    def train(self, samples: list[TrainSample], global_num_samples: int | None = None) -> dict[str, float]:
        """Optimizer steps over this rank's share of one batch; returns metrics averaged over micro-batches.

        With several ranks, `samples` is this rank's deal of the batch (grpo.learner.batching.rank_shards) and
        `global_num_samples` the batch's size. A rank holding no samples, or none of some mini-batch, still
        runs every pass and collective the others run, with zero gradient, so no rank waits on another.
        """
        t0 = time.perf_counter()
        if global_num_samples is None:
            if self.dist.world_size > 1:
                raise ValueError("train: with several ranks, pass global_num_samples (the whole batch's size)")
            global_num_samples = len(samples)
        if not global_num_samples:  # the same on every rank: none of them trains
            return {"learner/skipped_empty_batch": 1.0}
        if self.needs_reference:
            if self.reference is not None:
                self._fill_logprobs(samples, "ref_logprobs", self.reference)
            else:
                with self.model.disable_adapter():
                    self._fill_logprobs(samples, "ref_logprobs", self.policy)
        # pi_old is the policy before this batch's first update: the ratio's denominator and the numerator of
        # the TIS weight min(pi_old / pi_rollout, tis_cap) (AReaL's decoupled PPO, verl's one-step-off-policy).
        # With one update per batch it is logp.detach() (policy_loss's None); with more, every update after
        # the first needs it stored.
        if self.num_iterations * self.mini_batches > 1:
            self._fill_logprobs(samples, "old_logprobs", self.policy)

        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        mismatch_num, mismatch_den = 0.0, 0.0
        num_tokens = 0
        parts = rank_mini_batches(samples, self.mini_batches, self.dist.rank, self.dist.world_size,
                                  global_num_samples)
        for iteration in range(self.num_iterations):
            for mb_index, part in enumerate(parts):
                # Each rank holds 1/world_size of every mini-batch; normalisers are the global counts.
                global_part = self._global_responses_with_tokens(part)
                global_tokens = self._global_tokens(part)
                self.optimizer.zero_grad(set_to_none=True)
                for idx in self._micro_batches(part, self.policy):
                    mb = self._collate([part[i] for i in idx])
                    if not idx:  # keeps this rank in step with the others' collectives; zero gradient
                        logp, _ = self._logprobs(self.policy, mb, with_entropy=False)
                        self.router.pop_aux_loss()
                        (logp.sum() * 0.0).backward()
                        continue
                    logp, entropy = self._logprobs(self.policy, mb, with_entropy=True)
                    mask = mb.completion_mask.to(logp.device)
                    loss, metrics = policy_loss(
                        logp, _to(mb.old_logprobs, logp), mb.advantages.to(logp.device), mask, self.loss_cfg,
                        ref_logp=_to(mb.ref_logprobs, logp), rollout_logp=_to(mb.rollout_logprobs, logp),
                        entropy=entropy, num_responses_in_batch=global_part, num_tokens_in_batch=global_tokens)
                    aux = self.router.pop_aux_loss()
                    if aux is not None and self.cfg.router_aux_loss_coef > 0:
                        share = len(idx) / max(1, len(part))
                        loss = loss + self.cfg.router_aux_loss_coef * aux * share
                        metrics["moe/aux_loss"] = float(aux.detach())
                    loss.backward()
                    for key, value in metrics.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                        # loss/* terms are each micro-batch's share of the mini-batch loss: they add up, and
                        # are averaged over the updates (below), the same count on every rank.
                        if not key.startswith("loss/"):
                            counts[key] = counts.get(key, 0) + 1
                    if iteration == 0 and mb_index == 0 and mb.rollout_logprobs is not None:
                        diff = (logp.detach() - mb.rollout_logprobs.to(logp.device)).abs() * mask
                        mismatch_num += float(diff.sum())
                        mismatch_den += float(mask.sum())
                    num_tokens += int(mb.attention_mask.sum())
                self._all_reduce_grads()
                grad_norm = self._clip_and_step()
                sums["learner/grad_norm"] = sums.get("learner/grad_norm", 0.0) + grad_norm
                counts["learner/grad_norm"] = counts.get("learner/grad_norm", 0) + 1
        updates = self.num_iterations * len(parts)
        metrics = {k: sums[k] / (updates if k.startswith("loss/") else counts[k]) for k in sums}
        if mismatch_den:
            metrics["rollout/logprob_mismatch"] = mismatch_num / mismatch_den
        metrics.update(self.router.pop_load_metrics())
        elapsed = time.perf_counter() - t0
        metrics["learner/lr"] = self.scheduler.get_last_lr()[0]
        metrics["timing/learner"] = elapsed
        metrics["throughput/learner_tokens_per_s"] = num_tokens / max(elapsed, 1e-9)
        return metrics

    def _global_tokens(self, part: list[TrainSample]) -> int:
        # On the learner's device: NCCL reduces only CUDA tensors.
        local = torch.tensor(float(sum(len(s.completion_ids) for s in part)), device=self.device)
        if self.dist.world_size > 1:
            dist.all_reduce(local)
        return max(1, int(local.item()))

    def _global_responses_with_tokens(self, part: list[TrainSample]) -> int:
        # The "grpo"/"dr_grpo" divisor: a response without a token that counts adds nothing and is not counted.
        local = torch.tensor(float(sum(1 for s in part if s.completion_ids)), device=self.device)
        if self.dist.world_size > 1:
            dist.all_reduce(local)
        return max(1, int(local.item()))

    def _all_reduce_grads(self) -> None:
        if self.dist.world_size == 1 or self.sharded:  # FSDP2 reduce-scatters the gradients in backward
            return
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)

    def _clip_and_step(self) -> float:
        if self.cfg.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        return fsdp.grad_norm_value(norm)

    # ------------------------------------------------------------------------------------ weights

    def gather_full_state_dict_on_rank0(self) -> dict[str, torch.Tensor]:
        """A full CPU copy of the model's weights with Hugging Face names, as the rollout engine loads them
        (LoRA merged in): the float32 master weights, which the engine casts to its own dtype (a float32
        engine needs them unrounded). Under fsdp2 it gathers the shards: every rank must call it, and ranks
        other than 0 get {}. Unsharded, each rank copies its own replica (the driver asks rank 0)."""
        if self.sharded:
            return fsdp.full_state_dict(self.model, keep=self.dist.rank == 0)
        if self.cfg.lora is None:
            return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.model.merge_adapter()
        try:
            out = {}
            for key, value in self.model.get_base_model().state_dict().items():
                if "lora_" in key:
                    continue
                out[key.replace(".base_layer.", ".")] = value.detach().to("cpu", copy=True)
            return out
        finally:
            self.model.unmerge_adapter()

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------ checkpoints

    def save(self, directory: str | Path) -> None:
        """Model (HF format, LoRA merged so any engine can serve it) + optimizer, scheduler and RNG states.
        Under fsdp2 every rank must call it (weights and optimizer state are gathered); rank 0 writes."""
        directory = Path(directory)
        self.save_model(directory / "model")
        if self.cfg.lora is not None:
            self.model.save_pretrained(directory / "adapter")
        optimizer = fsdp.optimizer_state(self.model, self.optimizer) if self.sharded else self.optimizer.state_dict()
        if self.sharded and self.dist.rank != 0:
            return
        torch.save({
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict(),
            "updates": self.updates,
            "rng": rng_state(),
        }, directory / "trainer_state.pt")

    def save_model(self, directory: str | Path) -> None:
        """Hugging Face directory of the full model. Under fsdp2 every rank must call it; rank 0 writes."""
        base = self.model.get_base_model() if self.cfg.lora is not None else self.model
        if self.sharded:
            full = self.gather_full_state_dict_on_rank0()
            if self.dist.rank != 0:
                return
            base.save_pretrained(directory, state_dict=full)
        elif self.cfg.lora is None:
            base.save_pretrained(directory)
        else:
            merged = self.gather_full_state_dict_on_rank0()
            base.save_pretrained(directory, state_dict=merged)
        self.tokenizer.save_pretrained(directory)

    def load_trainer_state(self, directory: str | Path) -> None:
        """Restore optimizer, scheduler and RNG. The weights come from directory/model at construction."""
        state = torch.load(Path(directory) / "trainer_state.pt", weights_only=False)
        if self.sharded:
            fsdp.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = state["updates"]
        set_rng_state(state["rng"])

    def load_adapter(self, directory: str | Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.model, load_file(str(Path(directory) / "adapter" / "adapter_model.safetensors")))

    def close(self) -> None:
        self.router.close()
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _to(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t.to(like.device)


