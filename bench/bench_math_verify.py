"""Math verifications per second: the math_accuracy path (extraction, worker pool, math-verify) on public data.

Workload (from ../shared/data): each GSM8K test gold boxed as a completion (right), gold + 1 (wrong) and
\frac{2 gold}{2} (right, but only after sympy evaluates it), and each MATH-500 reference solution (its
boxes, against its answer): 4457 verifications (one per completion, whatever its number of boxes).
Measured in-process (check_answer in this process, no time limit: the ceiling) and through the pool
with 1..N workers (fresh checker, so no verdict cache; worker start-up timed separately).

    .venv/bin/python bench/bench_math_verify.py [--workers 1 2] [--limit N]

Prints a table and writes bench/results/math_verify.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"


def workload(limit: int | None) -> tuple[list[str], list[str]]:
    """(completions, references) of the benchmark."""
    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    golds = [r["answer"].split("####")[-1].strip().replace(",", "") for r in rows(DATA / "gsm8k" / "test.jsonl")]
    math500 = rows(DATA / "math500" / "test.jsonl")
    completions = [f"The answer is \\boxed{{{g}}}." for g in golds]
    completions += [f"The answer is \\boxed{{{Decimal(g) + 1}}}." for g in golds]
    completions += [f"The answer is \\boxed{{\\frac{{{Decimal(g) * 2}}}{{2}}}}." for g in golds]  # sympy's work
    completions += [r["solution"] for r in math500]
    references = golds * 3 + [r["answer"] for r in math500]
    return completions[:limit], references[:limit]


def bench_in_process(completions: list[str], references: list[str]) -> dict:
    from rewards.extract import extract_answers, gold_answer
    from rewards.math_equiv import check_answer

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    start = time.perf_counter()
    for completion, reference in zip(completions, references):
        for answer in extract_answers(completion, "boxed").answers:
            check_answer(answer, gold_answer(reference))
    seconds = time.perf_counter() - start
    n = len(completions)
    return {"mode": "in-process", "workers": 0, "verifications": n, "seconds": seconds, "per_second": n / seconds}


def bench_pool(completions: list[str], references: list[str], workers: int) -> dict:
    from rewards.accuracy import MathChecker

    checker = MathChecker()
    start = time.perf_counter()
    checker.start(workers)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = checker.verdicts(completions, references, "boxed", timeout_s=5.0, num_workers=workers)
    seconds = time.perf_counter() - start
    checker.close()
    correct = sum(v.value == "correct" for v, _, _ in verdicts)
    return {"mode": "pool", "workers": workers, "verifications": len(verdicts), "seconds": seconds,
            "per_second": len(verdicts) / seconds, "startup_seconds": startup, "correct": correct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--limit", type=int, help="use only the first N completions")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "math_verify.json")
    args = parser.parse_args()

    completions, references = workload(args.limit)
    results = [bench_in_process(completions, references)]
    results += [bench_pool(completions, references, n) for n in args.workers]
    print(f"{'mode':<11} {'workers':>7} {'verifs':>7} {'seconds':>8} {'verifs/s':>9} {'startup s':>9}")
    for r in results:
        startup = f"{r['startup_seconds']:.2f}" if "startup_seconds" in r else "-"
        print(f"{r['mode']:<11} {r['workers']:>7} {r['verifications']:>7} {r['seconds']:>8.2f} "
              f"{r['per_second']:>9.1f} {startup:>9}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "math_verify", "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                "python": platform.python_version()},
        "workload": {"completions": len(completions),
                     "source": "gsm8k test (gold, gold+1, 2*gold/2), math500 solutions"},
        "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
