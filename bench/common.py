"""What the benchmarks share: the warmed-up 24M model, the prompt set, the machine's matmul rate, child
processes that report one JSON result, tables and result files.

The RL benchmarks need a policy whose responses end by themselves at varied lengths, as they do in real RL
(a random model never emits EOS, so every response would run to the length limit and hide what variable
lengths cost each side). `warm_model` gives one: qwen2-24m after a short supervised warm-up on R1-format
arithmetic traces of all five difficulty levels (40 to 250 tokens), cached under bench/.cache/.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
CACHE_DIR = REPO_ROOT / "bench" / ".cache"
RESULT_PREFIX = "RESULT "

if str(REPO_ROOT) not in sys.path:  # scripts run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))


@dataclass(frozen=True)
class Warmup:
    """The supervised warm-up of the benchmark policy; its fields name the cache entry."""

    preset: str = "qwen2-24m"
    model_seed: int = 0
    rows_per_level: int = 200
    data_seed: int = 1
    steps: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 5
    max_length: int = 384
    template: str = "r1_zero"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def arithmetic_rows(n: int, seed: int) -> list[dict]:
    """`n` arithmetic rows cycling through difficulty levels 1..5, so reference traces span 40-250 tokens."""
    from grpo.data.tasks import ARITHMETIC_LEVELS, generate_arithmetic

    levels = sorted(ARITHMETIC_LEVELS)
    per_level = {d: generate_arithmetic(n // len(levels) + 1, seed, d) for d in levels}
    return [per_level[levels[i % len(levels)]][i // len(levels)] for i in range(n)]


def warm_model(warmup: Warmup = Warmup(), cache_dir: Path = CACHE_DIR, log=print) -> Path:
    """The warmed-up policy directory (built once, then reused from `cache_dir`)."""
    final = cache_dir / f"{warmup.preset}-warm-{warmup.key()}"
    if (final / "config.json").is_file():
        return final
    import shutil
    import tempfile

    from grpo.config import OptimConfig, SupervisedTraining
    from grpo.data.tasks import solution_trace
    from grpo.data.templates import TEMPLATES, format_r1_completion
    from grpo.models.factory import make_model
    from pipelines.sft import train_sft

    cache_dir.mkdir(parents=True, exist_ok=True)
    log(f"warming up {warmup.preset} ({warmup.steps} SFT steps of {warmup.batch_size}); cached in {final}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        base = make_model(warmup.preset, Path(tmp) / "base", seed=warmup.model_seed)
        rows = arithmetic_rows(5 * warmup.rows_per_level, warmup.data_seed)
        template = TEMPLATES[warmup.template]
        prompts = [template(r["question"], None) for r in rows]
        completions = [format_r1_completion(solution_trace(r), r["answer"]) for r in rows]
        training = SupervisedTraining(
            epochs=warmup.steps * warmup.batch_size / len(rows), batch_size=warmup.batch_size,
            max_length=warmup.max_length,
            optim=OptimConfig(lr=warmup.lr, lr_schedule="cosine", warmup_steps=warmup.warmup_steps))
        summary = train_sft(base, prompts, completions, Path(tmp) / "model", training=training,
                            seed=warmup.model_seed, label="warm-up sft")
        (Path(tmp) / "model" / "bench_warmup.json").write_text(json.dumps(
            {"warmup": asdict(warmup), "summary": summary, "seconds": time.perf_counter() - start}, indent=2) + "\n")
        # A rename, so a warm-up killed half-way never leaves a directory that looks finished.
        shutil.move(str(Path(tmp) / "model"), final)
    log(f"warm-up done in {time.perf_counter() - start:.0f}s: loss {summary['loss first']:.2f} -> "
        f"{summary['loss last']:.2f}")
    return final


def matmul_flops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """The best FLOP/s of a float32 size x size matmul on `threads` threads: the machine's practical peak."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # first call: allocation, oneDNN/MKL dispatch
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def machine_info() -> dict:
    """CPU, versions and load: what a reader needs to compare two result files."""
    import torch

    processor = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "processor": processor, "python": platform.python_version(),
            "torch": torch.__version__, "load_average": os.getloadavg()[0]}


def busy_fraction(seconds: float = 3.0) -> float:
    """The share of the machine's CPU time that was busy over `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_idle(threshold: float = 0.25, max_wait_s: float = 300.0) -> float:
    """Wait (up to `max_wait_s`) until other processes leave the CPU mostly idle; return the last busy share.

    On a shared 2-core machine one other busy process halves a 2-thread measurement or worse (OpenMP threads
    wait at every barrier for the one that lost its core), so each measured process starts on a quiet
    machine when it can, and the busy share it started with is recorded beside its figures.
    """
    deadline = time.monotonic() + max_wait_s
    busy = busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        print(f"   waiting for a quiet CPU: {busy:.0%} busy (other processes)", flush=True)
        time.sleep(10)
        busy = busy_fraction()
    return busy


def emit_result(result: dict) -> None:
    """A child process's answer to its parent (see run_child)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# Signs that a child's Ray cluster was killed from outside: on a shared machine, another user's `ray stop
# --force` ends every Ray process of the machine. Such a child is run once more.
RAY_LOST = ("Raylet is terminated", "ActorUnavailableError", "ActorDiedError")


def run_child(script: Path, args: list[str], env: dict[str, str] | None = None, name: str = "") -> dict:
    """Run `script` with `args` in a fresh Python process and return the result it emitted.

    Benchmarks that start vLLM engines, Ray clusters or set thread counts run each case in its own process:
    an in-process engine owns its process, and thread settings cannot be undone. The child starts once the
    CPU is quiet (wait_for_idle, at most $BENCH_IDLE_WAIT_S seconds, default 300; the busy share it started
    with is added to its result as cpu_busy_before). Its "[bench]" progress lines are shown; a child that
    fails stops the benchmark with its output's tail, except that one whose Ray cluster was lost is retried.
    """
    label = f"{name or script.name} {' '.join(args)}"
    retried = False
    while True:
        busy_before = wait_for_idle(max_wait_s=float(os.environ.get("BENCH_IDLE_WAIT_S", 300)))
        process = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
                                   cwd=REPO_ROOT)
        result, tail, ray_lost = None, [], False
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
            elif line.startswith("[bench]"):
                print("   " + line, end="", flush=True)
            elif "[state-dump]" not in line:  # Ray's periodic dumps would push the traceback out of the tail
                tail = (tail + [line])[-60:]
            ray_lost = ray_lost or any(sign in line for sign in RAY_LOST)
        code = process.wait()
        if code == 0 and result is not None:
            return {**result, "cpu_busy_before": busy_before}
        if retried or not ray_lost:
            sys.exit(f"{label} failed (exit {code}); last output:\n{''.join(tail)}")
        retried = True
        print(f"   {name or script.name}: its Ray cluster was killed from outside; running it again", flush=True)


def progress(message: str) -> None:
    """A progress line from a child process (run_child shows these and hides the libraries' chatter)."""
    print(f"[bench] {message}", flush=True)


def format_table(headers: list[str], rows: list[list]) -> str:
    """A right-aligned text table; floats get 3 significant decimals' worth of precision."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_results(name: str, payload: dict) -> Path:
    """bench/results/<name>.json with the machine description added."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **payload}, indent=2) + "\n")
    return path
