"""Weight sync seconds vs parameter count, for the rollout engine in vLLM's engine-core process and in the
calling process (grpo/rollout/engine.py documents the choice these figures support).

For each size a Qwen2 model (grpo.models.factory, tiny-qwen2's shape scaled up to ~100M parameters) is
written, an engine started on it, and measured: engine start; `update_weights` from a state dict (checkpoint
layout + write to /dev/shm + load + vLLM's post-load processing) and from a safetensors path; and
generation throughput (8 prompts x 8 samples x 64 tokens) as context for the mode choice. Every
(size, mode) runs in a fresh child process: an in-process engine owns its process. In-process children
get OMP_NUM_THREADS=1, as Ray gives a 1-CPU actor (RolloutWorker); without it vLLM drops torch's threads
from 2 to 1 at run time, and generation was 2-10x slower and erratic here.

    .venv/bin/python bench/bench_weight_sync.py [--sizes tiny,3m,24m,50m,100m] [--modes engine-core,in-process]

Prints a table and writes bench/results/weight_sync.json. Timings are medians of --repeats syncs; the
machine may be shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# hidden size, layers, MLP width, attention heads, KV heads (tiny-qwen2's proportions otherwise).
SIZES = {
    "tiny": (128, 2, 384, 4, 2),
    "3m": (256, 4, 768, 4, 2),
    "24m": (512, 8, 1536, 8, 2),
    "50m": (768, 8, 2304, 12, 2),
    "100m": (1024, 8, 3072, 16, 2),
}
MODES = {"engine-core": False, "in-process": True}
RESULTS = Path(__file__).parent / "results" / "weight_sync.json"


def measure(size: str, in_process: bool, repeats: int) -> dict:
    """One engine over a fresh model of `size`; runs in a child process."""
    import torch

    from grpo.models.factory import load_policy, make_model
    from grpo.rollout.engine import RolloutEngine, SamplingConfig
    from grpo.rollout.weights_io import SYNC_DIR, checkpoint_layout, write_safetensors

    hidden, layers, mlp, heads, kv_heads = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model("tiny-qwen2", Path(tmp) / size, overrides={
            "hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": mlp,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads})
        learner, _ = load_policy(model_dir)
        state = learner.state_dict()
        start = time.perf_counter()
        engine = RolloutEngine(model_dir, max_model_len=512, kv_cache_gib=1, in_process=in_process)
        start_seconds = time.perf_counter() - start
        try:
            sampling = SamplingConfig(max_tokens=64, seed=0)
            prompts = [[5 + i, 6, 7, 8] for i in range(8)]
            engine.generate(prompts, 8, sampling)  # warm-up
            start = time.perf_counter()
            tokens = sum(len(s.token_ids) for g in engine.generate(prompts, 8, sampling) for s in g)
            tokens_per_s = tokens / (time.perf_counter() - start)

            from_dict = [engine.update_weights(state, engine.weights_version + 1) for _ in range(repeats)]
            path = SYNC_DIR / f"bench-weights-{os.getpid()}.safetensors"
            write_safetensors(checkpoint_layout(state, learner), path, torch.float32)
            try:
                from_path = [engine.update_weights(path, engine.weights_version + 1) for _ in range(repeats)]
            finally:
                path.unlink()
        finally:
            engine.close()
    return {
        "size": size, "mode": "in-process" if in_process else "engine-core",
        "parameters": learner.num_parameters(), "bytes": int(from_dict[0]["sync/bytes"]),
        "start_s": start_seconds, "generate_tok_per_s": tokens_per_s,
        "sync_dict_s": statistics.median(r["sync/seconds"] for r in from_dict),
        "sync_path_s": statistics.median(r["sync/seconds"] for r in from_path),
        "worker_load_s": statistics.median(r["sync/load_seconds"] for r in from_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, mode = args.child
        print("RESULT " + json.dumps(measure(size, MODES[mode], args.repeats)), flush=True)
        return

    rows = []
    header = (f"{'size':>5} {'mode':>11} {'params':>11} {'MB':>7} {'start s':>8} {'sync(dict) s':>12} "
              f"{'sync(path) s':>12} {'worker s':>9} {'MB/s':>7} {'gen tok/s':>9}")
    print(header)
    for size in args.sizes.split(","):
        for mode in args.modes.split(","):
            env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if MODES[mode] else {}))
            child = subprocess.run([sys.executable, __file__, "--child", size, mode, "--repeats", str(args.repeats)],
                                   capture_output=True, text=True, env=env)
            lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
            if child.returncode != 0 or not lines:
                sys.exit(f"{size}/{mode} failed:\n{child.stderr[-3000:]}")
            row = json.loads(lines[-1][len("RESULT "):])
            rows.append(row)
            mb = row["bytes"] / 1e6
            print(f"{size:>5} {mode:>11} {row['parameters']:>11,} {mb:>7.1f} {row['start_s']:>8.1f} "
                  f"{row['sync_dict_s']:>12.3f} {row['sync_path_s']:>12.3f} {row['worker_load_s']:>9.3f} "
                  f"{mb / row['sync_dict_s']:>7.0f} {row['generate_tok_per_s']:>9.0f}", flush=True)

    import torch
    import vllm

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "processor": _cpu_model(), "python": platform.python_version(),
                    "torch": torch.__version__, "vllm": vllm.__version__},
        "dtype": "float32", "repeats": args.repeats, "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
