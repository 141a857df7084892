"""The RL loop: prompts -> rollout (vLLM actors) -> rewards -> advantages -> learner updates -> weight sync.

One `RLLoop.run()` is one `rl` stage; its loop reads as the algorithm, one method per step (`_rollout`: prompts,
sampling, rewards; `_train_batch`: advantages; `_start_update`; `_sync_weights`), and shows where the off-policy
overlap starts the next rollout. Everything a run needs to resume lives in its stage directory:

    <stage_dir>/checkpoints/step-000010/   model/ (HF), trainer_state.pt, state.json   (atomic)
    <stage_dir>/metrics.jsonl, tensorboard/, samples.jsonl
    <stage_dir>/model/                      the final policy, written when the stage finishes

Rewards are computed as groups finish: each rollout worker streams a prompt's G samples as soon as all G are
done, and the driver scores that group while the workers generate the others.

One-step-off-policy (`rollout.off_policy_steps: 1`): while the learners train on batch t, the workers sample
batch t+1 with the weights of step t (and the driver scores it); the sync after step t waits for both. Each
batch is then one update stale, which the loss corrects with truncated importance sampling, min(pi_old /
pi_rollout, algorithm.tis_cap) with pi_old the learner's log-probs before its update. The first step of a
run, or of a resumed run, samples its own batch first (staleness 0).

Determinism: prompts of step k are a function of (seed, k); sampling seeds are a function of (seed, k, prompt);
so a run resumed from the checkpoint of step k continues exactly as the uninterrupted run would. Each
checkpoint records the stage's config; a resume with another one is refused (see `_check_resumable`). Off-policy,
the batch in flight at a checkpoint (sampled by the weights before it) is not saved: the resumed run samples
it again with the checkpoint's weights, a valid one-step-off-policy run but not bitwise the uninterrupted one.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import torch

from grpo.algorithms.advantages import compute_advantages, scale_negative_advantages
from grpo.algorithms.shaping import advantage_stats, dynamic_sampling_mask
from grpo.checkpoint import (atomic_directory, checkpoint_dir, checkpoint_state, config_fingerprint, describe_changes,
                             fixed_changes, flat_config, latest_checkpoint, prune, write_json)
from grpo.cluster import ensure_ray
from grpo.config import ClusterConfig, RLStage
from grpo.data.loading import load_rows
from grpo.data.templates import prompt_renderer
from common.errors import UserError
from grpo.learner.actor import make_learners, merge_rank_metrics
from grpo.learner.batching import TrainSample, rank_shards
from grpo.learner.logprobs import SamplingDistribution
from grpo.metrics import MetricsLogger
from grpo.process_supervision import process_advantages
from grpo.rollout.actor import engine_worker_options, finished_groups, make_rollout_workers, start_streams
from grpo.rollout.engine import Sample, SamplingConfig
from rewards.compose import ComposedRewards, RewardComposer, repeat_columns
from rewards.steps import StepScore, StepScorer

ACCURACY_REWARDS = ("math_accuracy", "exact_match", "code", "countdown")


@dataclass
class PromptBatch:
    rows: list[dict]
    prompts: list[str]


@dataclass
class Rollout:
    """One step's batch, sampled and scored: groups and scores in prompt order, and the rollout's timings.
    `steps` holds each sample's scored steps (process supervision), else None."""

    batch: PromptBatch
    groups: list[list[Sample]]
    scored: ComposedRewards
    timings: dict[str, float]
    steps: list[list[StepScore]] | None = None


@dataclass
class TrainBatch:
    """What the learners train on from one rollout: its samples with their advantages, and the bookkeeping
    its metrics report. `advantages` has one entry per sample of the kept groups (group-contiguous, before
    truncated samples are masked): a number (outcome supervision) or one per completion token (process)."""

    samples: list[TrainSample]
    rewards: torch.Tensor  # every sample's reward, kept groups or not
    kept: list[int]  # the groups dynamic sampling kept (all of them without it)
    dropped: int
    advantages: list[float | list[float]]
    sampled_by: int  # the weights version that sampled the batch
    staleness: int


class PromptSampler:
    """Epochs of seeded permutations over the dataset; step k's prompts depend only on (seed, k)."""

    def __init__(self, rows: list[dict], prompts: list[str], per_step: int, seed: int):
        if not rows:
            raise ValueError("the RL dataset is empty")
        self.rows, self.prompts, self.per_step, self.seed = rows, prompts, per_step, seed

    def batch(self, step: int) -> PromptBatch:
        picked_rows, picked_prompts = [], []
        for position in range(step * self.per_step, (step + 1) * self.per_step):
            epoch, offset = divmod(position, len(self.rows))
            order = list(range(len(self.rows)))
            random.Random(self.seed * 100_003 + epoch).shuffle(order)
            picked_rows.append(self.rows[order[offset]])
            picked_prompts.append(self.prompts[order[offset]])
        return PromptBatch(picked_rows, picked_prompts)


def train_samples(groups: list[list[Sample]], advantages: list, mask_truncated: bool) -> list[TrainSample]:
    """The learner's samples of the kept groups: the engine's own prompt and response token ids and log-probs
    (never a re-tokenization of the text, which need not give the same ids back), with one advantage per
    sample in group order (a float, or one per token under process supervision)."""
    out = []
    for sample, advantage in zip((s for group in groups for s in group), advantages, strict=True):
        truncated = sample.finish_reason == "length"
        if truncated and mask_truncated:
            continue
        out.append(TrainSample(prompt_ids=list(sample.prompt_token_ids), completion_ids=list(sample.token_ids),
                               advantage=advantage, rollout_logprobs=list(sample.logprobs), truncated=truncated))
    return out


class RLLoop:
    def __init__(self, stage: RLStage, model_dir: Path, stage_dir: Path, *, seed: int,
                 cluster: ClusterConfig, base_dir: Path | None = None, dtype: str = "float32",
                 progress=None, config: dict | None = None):
        """`dtype`: the model's (the recipe's model.dtype), which the engines use unless rollout.dtype says
        otherwise; the learners train float32 weights either way (learner.precision sets their compute).
        `config`: the stage's resolved config, flattened (the runner's; default: this stage's fields and the
        model it starts from). Each checkpoint records it; a resume refuses a checkpoint whose config differs
        in a key outside grpo.checkpoint.RESUMABLE_KEYS."""
        self.stage, self.model_dir, self.stage_dir = stage, Path(model_dir), Path(stage_dir)
        self.seed, self.cluster, self.base_dir, self.dtype = seed, cluster, base_dir, dtype
        self.progress = progress
        self.config = config if config is not None else {
            **flat_config(stage.model_dump(mode="json")), "input.model": str(self.model_dir),
            "recipe.seed": seed, "recipe.model.dtype": dtype}
        self.ckpt_root = self.stage_dir / "checkpoints"

    # --------------------------------------------------------------------------------------- setup

    def _prompts(self, tokenizer) -> PromptSampler:
        dataset = load_rows(self.stage.data, base_dir=self.base_dir)
        rows = [dict(r) for r in dataset]
        render = prompt_renderer(self.stage.template, tokenizer, self.stage.chat_template)
        prompts = [render(r["question"]) for r in rows]
        return PromptSampler(rows, prompts, self.stage.prompts_per_step, self.seed)

    def _start(self, resume_from: Path | None, start_step: int):
        stage = self.stage
        ensure_ray(self.cluster)
        lora = stage.learner.lora is not None
        # LoRA resumes from the base weights plus the saved adapter; full fine-tuning from the saved model.
        learner_dir = self.model_dir if (resume_from is None or lora) else resume_from / "model"
        engine_dir = self.model_dir if resume_from is None else resume_from / "model"
        rollout = stage.rollout
        learners = make_learners(
            stage.learner.num_learners, stage.learner.num_cpus_per_learner, stage.learner.num_gpus_per_learner,
            model_dir=str(learner_dir), reference_dir=str(self.model_dir), learner=stage.learner,
            algorithm=stage.algorithm,
            total_steps=stage.steps, num_iterations=stage.num_iterations, mini_batches=stage.mini_batches,
            max_completion_length=rollout.max_completion_length, seed=self.seed, dtype=self.dtype,
            sampling=SamplingDistribution(rollout.temperature, rollout.top_k, rollout.top_p))
        if resume_from is not None:
            if lora:
                ray.get([a.load_adapter.remote(str(resume_from)) for a in learners])
            ray.get([a.load_trainer_state.remote(str(resume_from)) for a in learners])
        workers = make_rollout_workers(
            model_dir=str(engine_dir), seed=self.seed, **engine_worker_options(stage.rollout, self.dtype),
            weights_version=start_step)  # versions count learner steps, so staleness is right after a resume
        return learners, workers

    # --------------------------------------------------------------------------------------- loop

    def run(self) -> Path:
        from transformers import AutoTokenizer

        stage = self.stage
        final_dir = self.stage_dir / "model"
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        sampler = self._prompts(tokenizer)
        resume_from = latest_checkpoint(self.ckpt_root)
        start_step = self._check_resumable(resume_from) if resume_from else 0
        self._rewind_logs(start_step)
        composer = RewardComposer(stage.rewards)
        self.step_scorer = StepScorer(stage.step_reward) if stage.step_reward else None
        self.tokenizer = tokenizer
        logger = MetricsLogger(self.stage_dir)
        learners, workers = self._start(resume_from, start_step)
        samples_log = (self.stage_dir / "samples.jsonl").open("a")
        try:
            upcoming = None  # off-policy: batch step+1, sampled and scored while the learners trained on `step`
            for step in range(start_step, stage.steps):
                # prompts -> rollout -> rewards (off-policy, batch `step` was sampled during the previous step)
                rollout = upcoming if upcoming is not None else self._rollout(step, sampler, composer, workers)
                batch = self._train_batch(step, rollout)           # advantages
                training = self._start_update(batch, learners)     # update, running on the learner actors
                upcoming = None
                if stage.rollout.off_policy_steps and step + 1 < stage.steps:
                    # One-step-off-policy: the workers still hold the weights this update started from; they
                    # sample and score batch step+1 with them while the learners train.
                    upcoming = self._rollout(step + 1, sampler, composer, workers)
                learner_metrics = ray.get(training)
                sync = self._sync_weights(step + 1, learners, workers)  # sync: the workers get version step+1
                metrics = self._metrics(rollout, batch, learner_metrics, sync)
                self._log_samples(samples_log, step, rollout)
                logger.log(step + 1, metrics)
                if self.progress:
                    self.progress(step + 1, stage.steps, metrics)
                if (step + 1) % stage.checkpoint_every == 0 or step + 1 == stage.steps:
                    self._checkpoint(step + 1, learners)
            with atomic_directory(final_dir) as tmp:
                ray.get(learners[0].save_model.remote(str(tmp)))
        finally:
            samples_log.close()
            logger.close()
            composer.close()
            if self.step_scorer:
                self.step_scorer.close()
            for actor in learners + workers:
                ray.kill(actor)
        return final_dir

    def _rollout(self, step: int, sampler: PromptSampler, composer: RewardComposer, workers) -> Rollout:
        """Sample batch `step` on the workers and score each group as it arrives."""
        stage, G = self.stage, self.stage.algorithm.num_generations
        batch = sampler.batch(step)
        sampling = SamplingConfig.from_options(stage.rollout, seed=self.seed * 1_000_003 + step * 100_003)
        started = time.perf_counter()
        streams = start_streams(workers, batch.prompts, G, sampling)
        groups: dict[int, list[Sample]] = {}
        scores: dict[int, ComposedRewards] = {}
        steps: dict[int, list[list[StepScore]]] = {}
        exposed_s = overlapped_s = 0.0
        for index, group in finished_groups(streams):
            received = time.perf_counter()
            row = batch.rows[index]
            columns = repeat_columns([row], G)
            columns["prompt"] = [batch.prompts[index]] * G
            columns["completion_length"] = [len(s.token_ids) for s in group]
            groups[index], scores[index] = group, composer([s.text for s in group], columns)
            if self.step_scorer:
                steps[index] = self.step_scorer([s.text for s in group], columns)
            scoring_s = time.perf_counter() - received
            if len(groups) < len(batch.prompts):
                overlapped_s += scoring_s  # other groups were still being generated meanwhile
            else:
                exposed_s += scoring_s
        order = range(len(batch.prompts))
        return Rollout(batch, [groups[i] for i in order], ComposedRewards.concat([scores[i] for i in order]), {
            "timing/generate": received - started,  # until the last group arrived
            "timing/reward": exposed_s,
            "timing/reward_overlapped": overlapped_s,
        }, steps=[s for i in order for s in steps[i]] if self.step_scorer else None)

    def _train_batch(self, step: int, rollout: Rollout) -> TrainBatch:
        """Advantages of `rollout` (batch `step`) and the samples the learners train on."""
        stage, algo, G = self.stage, self.stage.algorithm, self.stage.algorithm.num_generations
        groups = rollout.groups
        rewards = torch.tensor(rollout.scored.totals, dtype=torch.float32)
        sampled_by = min(s.weights_version for group in groups for s in group)
        staleness = step - sampled_by  # versions count learner steps: the learners are at version `step` now
        if not 0 <= staleness <= stage.rollout.off_policy_steps:
            raise RuntimeError(f"batch {step} was sampled by weights {staleness} steps old; rollout.off_policy_steps "
                               f"allows {stage.rollout.off_policy_steps}")

        keep = torch.ones(len(groups), dtype=torch.bool)
        dropped = 0
        if algo.dynamic_sampling:
            keep, dropped = dynamic_sampling_mask(rewards, G)
        kept = [g for g in range(len(groups)) if keep[g]]
        per_sample = self._advantages(rollout, kept, rewards)
        samples = train_samples([groups[g] for g in kept], per_sample, algo.mask_truncated_completions)
        return TrainBatch(samples, rewards, kept, dropped, per_sample, sampled_by, staleness)

    def _start_update(self, batch: TrainBatch, learners) -> list:
        """Start the learners' update on `batch` (each rank its shard); returns the refs of their metrics."""
        shards = rank_shards(batch.samples, len(learners))
        return [a.train.remote(shard, len(batch.samples)) for a, shard in zip(learners, shards)]

    def _sync_weights(self, version: int, learners, workers) -> dict[str, float]:
        """Push the learners' weights to every rollout worker as `version`."""
        t0 = time.perf_counter()
        weights = learners[0].gather_full_state_dict_on_rank0.remote()
        sync_results = ray.get([w.update_weights.remote(weights, version) for w in workers])
        t_sync = time.perf_counter() - t0
        return {"timing/sync": t_sync, "sync/seconds": max(r.get("sync/seconds", t_sync) for r in sync_results)}

    def _metrics(self, rollout: Rollout, batch: TrainBatch, learner_metrics: list[dict],
                 sync: dict[str, float]) -> dict[str, float]:
        """The step's metrics: the learners' (merged over ranks), the rollout's, the rewards' and the sync's."""
        G = self.stage.algorithm.num_generations
        scored, rewards, kept, per_sample = rollout.scored, batch.rewards, batch.kept, batch.advantages
        flat = [s for group in rollout.groups for s in group]
        metrics = merge_rank_metrics(learner_metrics)
        lengths = torch.tensor([len(s.token_ids) for s in flat], dtype=torch.float32)
        metrics.update({
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            **{f"reward/{name}": sum(v) / len(v) for name, v in scored.components.items()},
            "reward/errors": float(len(scored.errors)),
            "length/mean": float(lengths.mean()),
            "length/max": float(lengths.max()),
            "length/clipped_frac": sum(s.finish_reason == "length" for s in flat) / len(flat),
            "batch/dropped_groups": float(batch.dropped),
            "batch/samples": float(len(batch.samples)),
            "rollout/weights_version": float(batch.sampled_by),
            "rollout/staleness": float(batch.staleness),
            **rollout.timings,
            "timing/sync": sync["timing/sync"],
            "throughput/rollout_tokens_per_s": float(lengths.sum()) / max(rollout.timings["timing/generate"],
                                                                          1e-9),
            "sync/seconds": sync["sync/seconds"],
        })
        if rollout.steps is not None:
            step_scores = [s.score for row in rollout.steps for s in row]
            token_spread = [torch.tensor(a).std().item() for a in per_sample if isinstance(a, list) and len(a) > 1]
            metrics.update({
                "process/steps_per_sample": len(step_scores) / len(rollout.steps),
                "process/step_score_mean": sum(step_scores) / len(step_scores) if step_scores else 0.0,
                # How much the advantage varies along a response: 0 would mean outcome supervision in effect.
                "process/token_advantage_spread": sum(token_spread) / len(token_spread) if token_spread else 0.0,
                "process/step_reward_errors": float(self.step_scorer.errors),
            })
        if kept:
            kept_rewards = torch.cat([rewards[g * G : (g + 1) * G] for g in kept])
            # One number per response for the statistics: the mean over its tokens under process supervision.
            advantages = torch.tensor([a if isinstance(a, float) else sum(a) / max(1, len(a)) for a in per_sample])
            metrics.update({k: v for k, v in advantage_stats(advantages, kept_rewards, G).items()
                            if k.startswith(("advantage/", "frac_"))})
        for name in ACCURACY_REWARDS:
            if name in scored.components:
                values = scored.components[name]
                metrics["accuracy"] = sum(v >= 1.0 for v in values) / len(values)
                break
        return metrics

    def _advantages(self, rollout: Rollout, kept: list[int], rewards: torch.Tensor) -> list[float | list[float]]:
        """The advantage of every sample of the kept groups (group-contiguous): one number (outcome
        supervision) or one per completion token (process supervision)."""
        algo, G = self.stage.algorithm, self.stage.algorithm.num_generations
        indices = [i for g in kept for i in range(g * G, (g + 1) * G)]
        if not indices:
            return []
        if algo.supervision == "process":
            flat = [s for group in rollout.groups for s in group]
            per_token = process_advantages(
                self.tokenizer, [flat[i].token_ids for i in indices], [rollout.steps[i] for i in indices],
                rewards[indices], G, scale_rewards=algo.scale_rewards)
            return [scale_negative_advantages(torch.tensor(a), algo.negative_advantage_scale).tolist()
                    for a in per_token]
        # Over the kept groups only, so batch-level statistics (reinforce_pp_baseline) exclude the groups
        # dynamic sampling dropped.
        # Tokens each response puts in the loss (reinforce_pp_baseline whitens over them); masked ones put none.
        flat = [s for group in rollout.groups for s in group]
        loss_tokens = torch.tensor([0 if algo.mask_truncated_completions and flat[i].finish_reason == "length"
                                    else len(flat[i].token_ids) for i in indices], dtype=torch.float32)
        advantages = compute_advantages(rewards[indices], G, estimator=algo.advantage_estimator,
                                        scale_rewards=algo.scale_rewards, lengths=loss_tokens)
        return scale_negative_advantages(advantages, algo.negative_advantage_scale).tolist()

    def _log_samples(self, out, step: int, rollout: Rollout) -> None:
        """Best and worst completion of the first groups, with their reward components (for the report)."""
        groups, scored, batch, G = rollout.groups, rollout.scored, rollout.batch, self.stage.algorithm.num_generations
        for g in range(min(2, len(groups))):
            totals = scored.totals[g * G : (g + 1) * G]
            for label, j in (("best", max(range(G), key=totals.__getitem__)),
                             ("worst", min(range(G), key=totals.__getitem__))):
                i = g * G + j
                out.write(json.dumps({
                    "step": step + 1, "group": g, "which": label, "prompt": batch.prompts[g],
                    "completion": groups[g][j].text, "reward": totals[j],
                    "components": {k: v[i] for k, v in scored.components.items()},
                }) + "\n")
        out.flush()

    def _checkpoint(self, step: int, learners) -> None:
        with atomic_directory(checkpoint_dir(self.ckpt_root, step)) as tmp:
            ray.get(learners[0].save.remote(str(tmp)))
            write_json(tmp / "state.json", {"step": step, "data_cursor": step * self.stage.prompts_per_step,
                                            "config": self.config, "fingerprint": config_fingerprint(self.config)})
        prune(self.ckpt_root, keep=2)

    def _check_resumable(self, checkpoint: Path) -> int:
        """The checkpoint's step, after checking that this stage's config is the one it was written with."""
        state = checkpoint_state(checkpoint)
        name, step = self.stage.name, state["step"]
        if "config" in state and state.get("fingerprint") != config_fingerprint(self.config):
            changed = fixed_changes(state["config"], self.config)
            if changed:
                raise UserError(f"stage '{name}' changed since its checkpoint {checkpoint.name}: "
                                f"{describe_changes(changed)}; rerun with --force {name} to start it again")
        if self.stage.steps < step:
            raise UserError(f"stage '{name}': steps {self.stage.steps} is below its checkpoint's step {step}; "
                            f"raise steps, or rerun with --force {name} to start it again")
        return step

    def _rewind_logs(self, step: int) -> None:
        """Drop the lines of steps after `step` (logged before an interruption, after the last checkpoint) and
        a line the interruption cut short, so that the resumed run's lines for those steps are the only ones."""
        for path in (self.stage_dir / "metrics.jsonl", self.stage_dir / "samples.jsonl"):
            if path.exists():
                kept = [line for line in path.read_text().splitlines(keepends=True)
                        if line.endswith("\n") and json.loads(line)["step"] <= step]
                path.write_text("".join(kept))

