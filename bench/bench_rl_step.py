"""RL step throughput: our loop (grpo.driver.RLLoop: vLLM rollout and learner Ray actors) against TRL's
GRPOTrainer (HF generate, use_vllm=False: what a CPU user of TRL gets), side by side in one run.

Matched on both sides: the warmed-up qwen2-24m (bench/common.py), the same prompts in the same order
(R1-Zero template over arithmetic questions of levels 1-5), G samples per prompt, up to --max-new-tokens
new tokens at temperature 1, the exact_match reward on the <answer> tag, loss "grpo" with epsilon 0.2 and
beta 0, AdamW with the same constant learning rate, weight decay 0 and gradient clipping 1.0, and one
optimizer step over all prompts x G samples per RL step (TRL: per-device batch = prompts x G, no
accumulation). Both sides use every core of the machine: TRL's one process runs torch on all of them; our
rollout worker and learner each get all of them (the phases of a step run one after the other, so the Ray
cluster declares twice the cores). Per-step wall times come from each side's own step records; the first
--warmup-steps steps are run but not counted, and start-up (Ray, engine, models) is reported separately.

Side `ours_off_policy` is our loop with `rollout.off_policy_steps: 1` (batch t+1 sampled while the learner
trains on batch t); its phases overlap, so its row leaves "other" empty. Our reward column is the scoring
time not hidden behind generation (groups are scored as they finish: grpo/metrics.py).

    .venv/bin/python bench/bench_rl_step.py            # 8 prompts x 8 samples, 1 + 3 steps per side
    .venv/bin/python bench/bench_rl_step.py --quick    # 4 prompts x 8 samples, 1 + 2 steps per side
    .venv/bin/python bench/bench_rl_step.py --sides ours,ours_off_policy,trl   # the off-policy side too

Prints a table and writes bench/results/rl_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (arithmetic_rows, emit_result, format_table, progress, run_child, warm_model,  # noqa: E402
                    write_results)

DATA_SEED = 2  # the RL prompts; the warm-up used seed 1
DATASET_ROWS = 200
REWARD_KWARGS = {"extractor": "answer_tag"}


def dataset_rows() -> list[dict]:
    return arithmetic_rows(DATASET_ROWS, DATA_SEED)


def step_batches(config: dict) -> list[list[dict]]:
    """The rows of every step as our loop's PromptSampler draws them from dataset_rows(); TRL gets these rows
    in this order (shuffle off), so both sides see the same prompts at every step."""
    from grpo.driver import PromptSampler

    rows = dataset_rows()
    sampler = PromptSampler(rows, [r["question"] for r in rows], config["prompts_per_step"], config["seed"])
    return [sampler.batch(step).rows for step in range(config["steps"])]


def steady_mean(values: list[float], warmup_steps: int) -> float:
    return statistics.mean(values[warmup_steps:])


# ---------------------------------------------------------------------------------------------- ours

def run_ours(config: dict, off_policy_steps: int = 0) -> dict:
    """Our RL loop, as a recipe's rl stage runs it; per-step times from its metrics.jsonl records."""
    import ray

    from grpo.config import ClusterConfig, RLStage
    from grpo.driver import RLLoop
    from grpo.metrics import read_metrics

    cpus, warmup = config["ours_cpus"], config["warmup_steps"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in dataset_rows()))
        stage = RLStage.model_validate({
            "name": "rl", "type": "rl", "template": "r1_zero",
            "data": {"source": str(data)},
            "rewards": [{"name": "exact_match", "kwargs": REWARD_KWARGS}],
            "steps": config["steps"], "prompts_per_step": config["prompts_per_step"],
            "checkpoint_every": config["steps"],  # the one checkpoint is written after the last step is timed
            "rollout": {"max_completion_length": config["max_new_tokens"], "temperature": 1.0,
                        "num_cpus_per_worker": cpus, "max_model_len": 512, "kv_cache_gib": 1,
                        "off_policy_steps": off_policy_steps},
            "algorithm": {"num_generations": config["num_generations"], "loss_type": "grpo",
                          "epsilon": config["epsilon"], "beta": 0.0},
            "learner": {"lr": config["lr"], "max_grad_norm": config["max_grad_norm"], "num_cpus_per_learner": cpus},
        })
        stage_dir = Path(tmp) / "stage"
        progress(f"{config['side']}: {config['steps']} steps of {config['prompts_per_step']} prompts x "
                 f"{config['num_generations']}")
        start = time.time()
        RLLoop(stage, Path(config["model"]), stage_dir, seed=config["seed"],
               cluster=ClusterConfig(num_cpus=2 * cpus)).run()
        records = read_metrics(stage_dir / "metrics.jsonl")
        ray.shutdown()
    if [r["step"] for r in records] != list(range(1, config["steps"] + 1)):
        raise RuntimeError(f"expected {config['steps']} step records, got {[r['step'] for r in records]}")
    ends = [r["time"] for r in records]
    walls = [b - a for a, b in zip([start] + ends, ends)]
    phases = ("generate", "reward", "learner", "sync")
    # The first record's interval also holds Ray, learner and engine start-up: what its phases do not explain.
    startup = walls[0] - sum(records[0][f"timing/{p}"] for p in phases)
    steady = records[warmup:]
    means = {p: statistics.mean(r[f"timing/{p}"] for r in steady) for p in phases}
    if not off_policy_steps:
        # "other": Ray transfers of samples and weights' handles, advantages, logging (the step's unexplained rest).
        means["other"] = steady_mean(walls, warmup) - sum(means.values())
    return {
        "side": config["side"], "startup_s": startup, "step_walls": walls, "s_per_step": steady_mean(walls, warmup),
        "phases": means,
        "samples_per_step": statistics.mean(r["batch/samples"] for r in steady),
        "mean_completion_tokens": statistics.mean(r["length/mean"] for r in steady),
        "clipped_frac": statistics.mean(r["length/clipped_frac"] for r in steady),
        "reward_mean": statistics.mean(r["reward/mean"] for r in steady),
        "rollout_tokens_per_s": statistics.mean(r["throughput/rollout_tokens_per_s"] for r in steady),
        "learner_tokens_per_s": statistics.mean(r["throughput/learner_tokens_per_s"] for r in steady),
    }


# ---------------------------------------------------------------------------------------------- TRL

def run_trl(config: dict) -> dict:
    """TRL's GRPOTrainer with HF generate on the same model, prompts and settings; per-step times from a
    callback at each optimizer step's end."""
    from collections import defaultdict

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo.data.templates import TEMPLATES
    from rewards.registry import get_reward

    torch.set_num_threads(config["cpus"])
    exact = get_reward("exact_match")

    def exact_match(completions, answer, **_):
        """Our exact_match reward in TRL's calling convention (same extraction, same verdicts)."""
        return exact(completions, answer=answer, **REWARD_KWARGS)

    phase_times: dict[str, list[float]] = defaultdict(list)

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer with its generation and reward phases timed (TRL logs no timings without a tracker)."""

        def _generate_single_turn(self, *args, **kwargs):
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            phase_times["generate"].append(time.perf_counter() - start)
            return out

        def _calculate_rewards(self, *args, **kwargs):
            start = time.perf_counter()
            out = super()._calculate_rewards(*args, **kwargs)
            phase_times["reward"].append(time.perf_counter() - start)
            return out

    class Clock(TrainerCallback):
        def __init__(self):
            self.begin, self.ends, self.logs = 0.0, [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs or {}))

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    template = TEMPLATES["r1_zero"]
    rows = [r for batch in step_batches(config) for r in batch]
    dataset = Dataset.from_list([{"prompt": template(r["question"], tokenizer), "answer": r["answer"]} for r in rows])
    G, batch = config["num_generations"], config["prompts_per_step"] * config["num_generations"]
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, use_vllm=False,
            per_device_train_batch_size=batch, gradient_accumulation_steps=1, num_generations=G,
            max_completion_length=config["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
            loss_type="grpo", epsilon=config["epsilon"], beta=0.0, scale_rewards="group",
            learning_rate=config["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=config["max_grad_norm"],  # optimizer: TRL's default (AdamW, fused kernel)
            max_steps=config["steps"], shuffle_dataset=False, seed=config["seed"],
            logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0)
        clock = Clock()
        trainer = TimedGRPOTrainer(model=model, args=args, processing_class=tokenizer, reward_funcs=[exact_match],
                                   train_dataset=dataset, callbacks=[clock])
        progress(f"trl: {config['steps']} steps of {config['prompts_per_step']} prompts x {G}")
        trainer.train()
    startup = clock.begin - start
    if trainer.state.global_step != config["steps"] or len(clock.ends) != config["steps"]:
        raise RuntimeError(f"TRL ran {trainer.state.global_step} optimizer steps, expected {config['steps']}")
    walls = [b - a for a, b in zip([clock.begin] + clock.ends, clock.ends)]
    warmup = config["warmup_steps"]
    step_logs = [log for log in clock.logs if "completions/mean_length" in log][warmup:]
    phases = {p: statistics.mean(v[warmup:]) for p, v in phase_times.items()}
    # TRL's learner phase is the rest of its step (its forward/backward, optimizer and bookkeeping).
    phases["learner"] = steady_mean(walls, warmup) - sum(phases.values())
    return {
        "side": "trl", "startup_s": startup, "step_walls": walls, "s_per_step": steady_mean(walls, warmup),
        "phases": phases, "samples_per_step": float(batch),
        "mean_completion_tokens": statistics.mean(log["completions/mean_length"] for log in step_logs),
        "clipped_frac": statistics.mean(log.get("completions/clipped_ratio", float("nan")) for log in step_logs),
        "reward_mean": statistics.mean(log["reward"] for log in step_logs),
    }


# ---------------------------------------------------------------------------------------------- driver

SIDES = {"ours": run_ours, "ours_off_policy": lambda config: run_ours(config, off_policy_steps=1), "trl": run_trl}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 prompts per step, 1 + 2 steps per side")
    parser.add_argument("--prompts-per-step", type=int)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, help="measured steps per side (default 3; quick 2)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="steps run first and not measured (>= 1: "
                        "the first step holds one-off work on both sides)")
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="threads each side computes with")
    parser.add_argument("--ours-cpus", type=int, help="CPUs (threads) of each of our actors (default --cpus; "
                        "1 is the recipes' default allocation, which leaves cores idle in each phase)")
    parser.add_argument("--sides", default="ours,trl", help="comma-separated, of: " + ", ".join(SIDES) +
                        " (ours_off_policy: our loop with rollout.off_policy_steps 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        emit_result(SIDES[json.loads(args.child)["side"]](json.loads(args.child)))
        return
    if args.warmup_steps < 1:
        parser.error("--warmup-steps must be at least 1")
    sides = args.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown side(s) {', '.join(sorted(unknown))}; valid: {', '.join(SIDES)}")
    prompts = args.prompts_per_step or (4 if args.quick else 8)
    measured_steps = args.steps or (2 if args.quick else 3)
    config = {
        "model": str(warm_model()), "prompts_per_step": prompts, "num_generations": args.num_generations,
        "max_new_tokens": args.max_new_tokens, "steps": args.warmup_steps + measured_steps,
        "warmup_steps": args.warmup_steps, "lr": args.lr, "max_grad_norm": 1.0, "epsilon": 0.2, "seed": 0,
        "cpus": args.cpus, "ours_cpus": args.ours_cpus or args.cpus,
    }
    results = {}
    for side in sides:
        print(f"{side}: {config['steps']} steps ({args.warmup_steps} not measured)", flush=True)
        results[side] = run_child(Path(__file__), ["--child", json.dumps({**config, "side": side})], name=side)
        results[side]["samples_per_s"] = results[side]["samples_per_step"] / results[side]["s_per_step"]

    headers = ["side", "start-up s", "s/step", "samples/s", "generate s", "reward s", "learner s", "sync s",
               "other s", "mean len", "clipped", "reward"]
    rows = [[side, r["startup_s"], r["s_per_step"], r["samples_per_s"], r["phases"]["generate"],
             r["phases"]["reward"], r["phases"]["learner"], r["phases"].get("sync", 0.0), r["phases"].get("other", "-"),
             r["mean_completion_tokens"], r["clipped_frac"], r["reward_mean"]] for side, r in results.items()]
    print(format_table(headers, rows))
    payload = {"config": config, "results": results}
    if "ours" in results and "trl" in results:
        ratio = results["ours"]["samples_per_s"] / results["trl"]["samples_per_s"]
        payload["speedup_vs_trl"] = ratio
        print(f"RL step throughput, ours / TRL: {ratio:.2f}x (goal >= 2x)")
    if "ours_off_policy" in results:
        for base in ("ours", "trl"):
            if base in results:
                ratio = results["ours_off_policy"]["samples_per_s"] / results[base]["samples_per_s"]
                payload[f"off_policy_speedup_vs_{base}"] = ratio
                print(f"RL step throughput, ours_off_policy / {base}: {ratio:.2f}x")
    print(f"wrote {write_results('rl_step', payload)}")


if __name__ == "__main__":
    main()
