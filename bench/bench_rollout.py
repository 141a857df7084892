"""Rollout efficiency: our rollout tokens/s divided by raw vLLM's on the same prompts and sampling settings.

Workload: the warmed-up qwen2-24m (bench/common.py), R1-Zero prompts over arithmetic questions of levels 1-5,
G samples each, temperature 1, up to --max-new-tokens new tokens, the same per-prompt seeds on every side.
Each side runs in its own process with the same threads (every core by default), gets one warm-up call,
then --repeats timed calls; tokens/s is generated tokens over the median call's wall time.

  - raw vLLM: `vllm.LLM` with vLLM's defaults (engine core in its own process, compiled model), except
    whole prefills, without which seeded sampling fails on the CPU for batches this size, and the plain
    sampling parameters; once more with logprobs=0, which RL needs. The efficiency goal is against the
    first row. Again with enforce_eager=True (no compilation), as our engine runs (its weight updates need
    it): the difference is what compilation is worth.
  - ours: a RolloutWorker Ray actor (grpo.rollout.actor), called as the RL loop calls it, timed from the
    driver (token ids, log-probs and text back through Ray included); and the RolloutEngine alone, in
    process, which splits our cost between the engine choices and Ray.

    .venv/bin/python bench/bench_rollout.py [--quick] [--prompts 8] [--repeats 3]

Prints a table and writes bench/results/rollout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arithmetic_rows, emit_result, format_table, progress, run_child, warm_model, write_results  # noqa: E402

DATA_SEED = 2
KV_CACHE_GIB = 1
MAX_MODEL_LEN = 512


def workload(config: dict) -> list[str]:
    from grpo.data.templates import TEMPLATES

    return [TEMPLATES["r1_zero"](r["question"], None) for r in arithmetic_rows(config["prompts"], DATA_SEED)]


def timed_calls(generate, repeats: int) -> dict:
    """One warm-up call, then `repeats` timed ones; `generate()` returns the number of tokens it produced."""
    generate()
    walls, tokens = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens.append(generate())
        walls.append(time.perf_counter() - start)
    median = sorted(range(repeats), key=walls.__getitem__)[repeats // 2]
    return {"walls": walls, "tokens": tokens, "tokens_per_s": tokens[median] / walls[median]}


def run_raw(config: dict, enforce_eager: bool = False) -> dict:
    """vLLM as a user would start it: defaults, except the model's length and the KV cache size we also use;
    with `enforce_eager`, also without compilation, as our engine runs (its weight updates need it)."""
    from vllm import LLM, SamplingParams

    prompts = workload(config)
    G = config["num_generations"]
    name = "raw vLLM, eager" if enforce_eager else "raw vLLM"
    start = time.perf_counter()
    # Whole prefills: with chunked prefill, a seeded request whose prefill is split fails on the CPU ("CPU
    # Generator does not use offset", grpo/rollout/engine.py) once prompts x G exceed the token budget.
    llm = LLM(model=config["model"], dtype="float32", seed=0, max_model_len=MAX_MODEL_LEN,
              kv_cache_memory_bytes=KV_CACHE_GIB << 30, enforce_eager=enforce_eager,
              enable_chunked_prefill=False, max_num_batched_tokens=8192)
    startup = time.perf_counter() - start

    def generate(logprobs):
        params = [SamplingParams(n=G, temperature=1.0, top_p=1.0, max_tokens=config["max_new_tokens"],
                                 seed=config["seed"] + i * G, logprobs=logprobs) for i in range(len(prompts))]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return sum(len(c.token_ids) for out in outputs for c in out.outputs)

    progress(f"{name}: generating")
    rows = [{"side": name, "startup_s": startup, **timed_calls(lambda: generate(None), config["repeats"])},
            {"side": f"{name} + logprobs", "startup_s": startup, **timed_calls(lambda: generate(0), config["repeats"])}]
    llm.llm_engine.engine_core.shutdown()
    return {"rows": rows}


def run_ours(config: dict) -> dict:
    """Our rollout as the RL loop uses it: a RolloutWorker Ray actor with all the cores."""
    import ray

    from grpo.config import ClusterConfig
    from grpo.cluster import ensure_ray
    from grpo.rollout.actor import make_rollout_workers
    from grpo.rollout.engine import SamplingConfig

    prompts = workload(config)
    sampling = SamplingConfig(temperature=1.0, max_tokens=config["max_new_tokens"], seed=config["seed"])
    ensure_ray(ClusterConfig(num_cpus=config["cpus"]))
    start = time.perf_counter()
    [worker] = make_rollout_workers(1, config["model"], config["cpus"], dtype="float32", seed=0,
                                    max_model_len=MAX_MODEL_LEN, kv_cache_gib=KV_CACHE_GIB)
    startup = time.perf_counter() - start

    def generate():
        groups = ray.get(worker.generate.remote(prompts, config["num_generations"], sampling))
        return sum(len(s.token_ids) for group in groups for s in group)

    progress("ours (Ray worker): generating")
    row = {"side": "ours: Ray rollout worker", "startup_s": startup, **timed_calls(generate, config["repeats"])}
    ray.kill(worker)
    ray.shutdown()
    return {"rows": [row]}


def run_engine(config: dict) -> dict:
    """Our RolloutEngine alone, in this process (as the Ray worker hosts it), without Ray."""
    from grpo.rollout.engine import RolloutEngine, SamplingConfig

    prompts = workload(config)
    sampling = SamplingConfig(temperature=1.0, max_tokens=config["max_new_tokens"], seed=config["seed"])
    start = time.perf_counter()
    engine = RolloutEngine(config["model"], dtype="float32", seed=0, max_model_len=MAX_MODEL_LEN,
                           kv_cache_gib=KV_CACHE_GIB, in_process=True)
    startup = time.perf_counter() - start

    def generate():
        groups = engine.generate(prompts, config["num_generations"], sampling)
        return sum(len(s.token_ids) for group in groups for s in group)

    progress("ours (engine): generating")
    row = {"side": "ours: RolloutEngine, no Ray", "startup_s": startup, **timed_calls(generate, config["repeats"])}
    engine.close()
    return {"rows": [row]}


CASES = {"raw": run_raw, "raw_eager": partial(run_raw, enforce_eager=True), "ours": run_ours, "engine": run_engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 prompts, 2 timed calls")
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config = json.loads(args.child)
        emit_result(CASES[config["case"]](config))
        return
    cases = args.cases.split(",")
    if unknown := set(cases) - set(CASES):
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; valid: {', '.join(CASES)}")
    config = {"model": str(warm_model()), "prompts": args.prompts or (4 if args.quick else 8),
              "num_generations": args.num_generations, "max_new_tokens": args.max_new_tokens,
              "repeats": args.repeats or (2 if args.quick else 3), "cpus": args.cpus, "seed": 0}
    rows = []
    for case in cases:
        print(f"{case} ...", flush=True)
        # The thread count a Ray actor with `cpus` CPUs gets, given to every side alike.
        rows += run_child(Path(__file__), ["--child", json.dumps({**config, "case": case})],
                          env={"OMP_NUM_THREADS": str(args.cpus)}, name=case)["rows"]
    print(format_table(["side", "start-up s", "tokens (median call)", "tokens/s"],
                       [[r["side"], r["startup_s"], r["tokens"][len(r["tokens"]) // 2], r["tokens_per_s"]]
                        for r in rows]))
    payload = {"config": config, "rows": rows}
    by_side = {r["side"]: r["tokens_per_s"] for r in rows}
    if "ours: Ray rollout worker" in by_side and "raw vLLM" in by_side:
        ours = by_side["ours: Ray rollout worker"]
        payload["efficiency"] = ours / by_side["raw vLLM"]
        payload["efficiency_vs_raw_with_logprobs"] = ours / by_side["raw vLLM + logprobs"]
        print(f"rollout efficiency, ours / raw vLLM: {payload['efficiency']:.2f} (goal >= 0.9); "
              f"against raw vLLM with logprobs: {payload['efficiency_vs_raw_with_logprobs']:.2f}")
    print(f"wrote {write_results('rollout', payload)}")


if __name__ == "__main__":
    main()
