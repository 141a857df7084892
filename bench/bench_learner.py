"""Learner throughput: tokens/s, peak memory and the fraction of the machine's matmul rate one GRPO update
reaches, for a dense model, a MoE model and optionally a real model, in float32 and under bfloat16 autocast
(`learner.precision: bf16`, float32 master weights).

Each model runs in its own process with the same threads: grpo.learner.Learner (in process, no Ray) trains
on one RL batch of --samples responses (prompt 92 tokens, as the R1-Zero template gives; completion
lengths drawn uniformly from 16..--max-new-tokens, seeded), loss "grpo", beta 0, default token budget.
After one warm-up update, --repeats updates are timed. In the same process a float32 2048^3 matmul gives
the machine's practical FLOP/s; the learner's model FLOPs are counted as training FLOPs usually are:
6 x (active matmul parameters) per token, the LM head only on completion positions (the only ones our
learner computes logits for), plus causal attention; recomputation does not count.
Peak memory: the process's peak resident set during the timed updates (VmHWM, reset before them), and
how far it rose above the resident set before them (model, optimizer state and allocator caches in place).

  - dense: qwen2-24m (grpo.models.factory)
  - moe:   tiny-deepseek-v3's architecture (MLA, 1 shared + 8 routed experts, top-2) at qwen2-24m's width
           and depth: 47M parameters, 22M of them in matmuls active per token
  - --model-dir DIR: a Hugging Face model directory (e.g. SmolLM2-135M-Instruct), named by its folder

The matmul rate is float32's for both precisions (the fraction of it a bf16 run reaches can exceed 1 on a
processor with bfloat16 instructions).

    .venv/bin/python bench/bench_learner.py [--quick] [--models dense,moe] [--model-dir DIR]
        [--precisions float32,bf16] [--samples 64] [--out learner]

Prints a table and writes bench/results/<--out>.json (default learner.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit_result, format_table, matmul_flops, progress, run_child, write_results  # noqa: E402

PROMPT_TOKENS = 92
MODELS = {
    "dense": ("qwen2-24m", {}),
    "moe": ("tiny-deepseek-v3", {"hidden_size": 512, "num_hidden_layers": 8, "intermediate_size": 1536,
                                 "moe_intermediate_size": 384, "num_attention_heads": 8, "num_key_value_heads": 8,
                                 "q_lora_rank": 128}),
}


def rl_batch(n: int, max_new_tokens: int, vocab: int, seed: int = 0):
    """`n` TrainSamples with random tokens, varied completion lengths, +-1 advantages and rollout log-probs
    (the loop's truncated importance sampling needs them)."""
    from grpo.learner.batching import TrainSample

    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        length = rng.randint(16, max_new_tokens)
        samples.append(TrainSample(
            prompt_ids=[rng.randrange(3, vocab) for _ in range(PROMPT_TOKENS)],
            completion_ids=[rng.randrange(3, vocab) for _ in range(length)], advantage=rng.choice((-1.0, 1.0)),
            rollout_logprobs=[-rng.uniform(0.1, 3.0) for _ in range(length)]))
    return samples


def active_matmul_parameters(model) -> tuple[int, int]:
    """(total, per-token) parameters of the decoder's matrix multiplications: embeddings, the LM head and
    norms excluded; routed experts counted at num_experts_per_tok / n_routed_experts."""
    config = model.config
    routed = getattr(config, "num_experts_per_tok", 1) / getattr(config, "n_routed_experts", 1)
    total = active = 0
    for name, param in model.named_parameters():
        if param.dim() < 2 or "embed_tokens" in name or "lm_head" in name:
            continue
        total += param.numel()
        # ".experts." matches the routed experts, not "shared_experts."
        active += param.numel() * (routed if re.search(r"\.experts\.", name) else 1)
    return total, int(active)


def attention_flops_per_sequence(config, length: int) -> float:
    """Forward FLOPs of QK^T and AV over a causal sequence: heads x (qk dim + v dim) x length^2."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    qk = getattr(config, "qk_nope_head_dim", 0) + getattr(config, "qk_rope_head_dim", 0) or head_dim
    v = getattr(config, "v_head_dim", None) or head_dim
    return config.num_hidden_layers * config.num_attention_heads * (qk + v) * length**2


def train_flops(model, samples) -> float:
    config = model.config
    _, active = active_matmul_parameters(model)
    tokens = sum(s.length for s in samples)
    completion = sum(len(s.completion_ids) for s in samples)
    forward = (2 * active * tokens + 2 * config.hidden_size * config.vocab_size * completion
               + sum(attention_flops_per_sequence(config, s.length) for s in samples))
    return 3 * forward  # backward: twice the forward


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def run_case(config: dict) -> dict:
    import torch

    from grpo.config import AlgorithmConfig, LearnerConfig
    from grpo.learner.learner import Learner
    from grpo.models.factory import make_model

    torch.set_num_threads(config["cpus"])
    peak_flops = matmul_flops(config["cpus"])
    preset, overrides = (config["model_dir"], {}) if config["model_dir"] else MODELS[config["model"]]
    learner_config = LearnerConfig(lr=1e-6, precision=config["precision"])
    algorithm = AlgorithmConfig(num_generations=8, loss_type="grpo")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = config["model_dir"] or make_model(preset, Path(tmp) / "model", overrides=overrides)
        learner = Learner(model_dir, learner_config, algorithm, total_steps=config["repeats"] + 1,
                          max_completion_length=config["max_new_tokens"])
    samples = rl_batch(config["samples"], config["max_new_tokens"], learner.model.config.vocab_size)
    name = f"{config['model']} {config['precision']}"
    progress(f"{name}: warm-up update")
    learner.train(samples)
    rss_before = proc_status_kib("VmRSS")
    peak_rss_reset()
    walls = []
    for i in range(config["repeats"]):
        progress(f"{name}: timed update {i + 1}/{config['repeats']}")
        start = time.perf_counter()
        learner.train(samples)
        walls.append(time.perf_counter() - start)
    wall = statistics.median(walls)
    flops = train_flops(learner.model, samples)
    total, active = active_matmul_parameters(learner.model)
    return {
        "model": config["model"], "precision": config["precision"], "preset": preset, "overrides": overrides,
        "parameters": learner.model.num_parameters(), "matmul_parameters": total, "active_matmul_parameters": active,
        "samples": len(samples), "tokens": sum(s.length for s in samples),
        "completion_tokens": sum(len(s.completion_ids) for s in samples), "walls": walls,
        "tokens_per_s": sum(s.length for s in samples) / wall, "model_flops_per_step": flops,
        "achieved_flops": flops / wall, "matmul_flops": peak_flops, "fraction_of_matmul": flops / wall / peak_flops,
        "rss_before_mib": rss_before / 1024, "peak_rss_mib": proc_status_kib("VmHWM") / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 samples, 1 timed update")
    parser.add_argument("--models", default=",".join(MODELS), help="presets to build (empty: none)")
    parser.add_argument("--model-dir", help="also a Hugging Face model directory (e.g. a real model)")
    parser.add_argument("--precisions", default="float32,bf16", help="learner.precision values")
    parser.add_argument("--out", default="learner", help="results name: bench/results/<out>.json")
    parser.add_argument("--samples", type=int, help="responses per update (default 64: 8 prompts x 8)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        emit_result(run_case(json.loads(args.child)))
        return
    models = [m for m in args.models.split(",") if m]
    if unknown := set(models) - set(MODELS):
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; valid: {', '.join(MODELS)}")
    cases = [(m, None) for m in models]
    if args.model_dir:
        if not (Path(args.model_dir) / "config.json").is_file():
            parser.error(f"--model-dir {args.model_dir} is not a Hugging Face model directory (no config.json)")
        cases.append((Path(args.model_dir).resolve().name, str(Path(args.model_dir).resolve())))
    precisions = args.precisions.split(",")
    if unknown := set(precisions) - {"float32", "bf16"}:
        parser.error(f"unknown precision(s) {', '.join(sorted(unknown))}; valid: float32, bf16")
    config = {"samples": args.samples or (32 if args.quick else 64), "max_new_tokens": args.max_new_tokens,
              "repeats": args.repeats or (1 if args.quick else 3), "cpus": args.cpus}
    rows = []
    for model, model_dir in cases:
        for precision in precisions:
            print(f"{model} {precision} ...", flush=True)
            case = {**config, "model": model, "model_dir": model_dir, "precision": precision}
            rows.append(run_child(Path(__file__), ["--child", json.dumps(case)], name=f"{model}-{precision}"))
    print(format_table(
        ["model", "precision", "params M", "active M", "tokens", "s/update", "tokens/s", "GFLOP/s",
         "matmul GFLOP/s", "fraction", "peak RSS MiB", "update extra MiB"],
        [[r["model"], r["precision"], r["parameters"] / 1e6, r["active_matmul_parameters"] / 1e6, r["tokens"],
          statistics.median(r["walls"]), r["tokens_per_s"], r["achieved_flops"] / 1e9, r["matmul_flops"] / 1e9,
          r["fraction_of_matmul"], r["peak_rss_mib"], r["peak_rss_mib"] - r["rss_before_mib"]] for r in rows]))
    print(f"wrote {write_results(args.out, {'config': config, 'rows': rows})}")


if __name__ == "__main__":
    main()
