"""Run every benchmark of bench/ in one go, one after the other, and summarise their headline figures.

    .venv/bin/python bench/run_all.py            # the full set (about 20 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # smaller workloads (about 10 minutes)
    .venv/bin/python bench/run_all.py --only rl_step,rollout

Each benchmark prints its own table and writes its own bench/results/<name>.json; this script adds
bench/results/summary.json with each one's command, exit code, wall time and headline figure. A benchmark
that fails is reported and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, RESULTS_DIR, format_table, machine_info, write_results  # noqa: E402

BENCH = REPO_ROOT / "bench"


def _json(name: str) -> dict:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _rl_step(_: str) -> str:
    result = _json("rl_step")
    if "speedup_vs_trl" not in result:
        return "-"
    headline = f"ours / TRL samples/s: {result['speedup_vs_trl']:.2f}x (goal >= 2)"
    if "off_policy_speedup_vs_trl" in result:
        headline += f"; one-step-off-policy / TRL: {result['off_policy_speedup_vs_trl']:.2f}x"
    return headline


def _rollout(_: str) -> str:
    result = _json("rollout")
    return f"ours / raw vLLM tokens/s: {result['efficiency']:.2f} (goal >= 0.9)" if "efficiency" in result else "-"


def _learner(_: str) -> str:
    rows = _json("learner").get("rows", [])
    return "; ".join(f"{r['model']}: {r['tokens_per_s']:.0f} tok/s, {r['fraction_of_matmul']:.0%} of matmul, "
                     f"peak {r['peak_rss_mib']:.0f} MiB" for r in rows) or "-"


def _weight_sync(_: str) -> str:
    rows = _json("weight_sync").get("rows", [])
    return "; ".join(f"{r['size']}/{r['mode']}: {r['sync_dict_s']:.2f}s" for r in rows
                     if r["mode"] == "in-process") or "-"


def _sandbox(output: str) -> str:
    match = re.search(r"([\d,]+) executions/minute", output)
    return f"{match.group(1)} executions/min" if match else "-"


def _math_verify(_: str) -> str:
    rows = _json("math_verify").get("results", [])
    return "; ".join(f"{r['mode']}({r['workers']}): {r['per_second']:.0f}/s" for r in rows) or "-"


# name -> (script, full-run arguments, quick-run arguments, headline reader)
BENCHMARKS = {
    "rl_step": ("bench_rl_step.py", ["--sides", "ours,ours_off_policy,trl"], ["--quick"], _rl_step),
    "rollout": ("bench_rollout.py", [], ["--quick"], _rollout),
    "learner": ("bench_learner.py", [], ["--quick"], _learner),
    "weight_sync": ("bench_weight_sync.py", ["--sizes", "tiny,3m,24m,100m", "--modes", "in-process"],
                    ["--sizes", "tiny,24m", "--modes", "in-process", "--repeats", "2"], _weight_sync),
    "sandbox": ("bench_sandbox.py", ["--runs", "5000"], ["--runs", "1000"], _sandbox),
    "math_verify": ("bench_math_verify.py", [], ["--limit", "1000"], _math_verify),
}


def run(name: str, quick: bool) -> dict:
    script, full, short, headline = BENCHMARKS[name]
    command = [sys.executable, str(BENCH / script), *(short if quick else full)]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = process.wait()
    seconds = time.perf_counter() - start
    output = "".join(lines)
    return {"name": name, "command": command[1:], "exit_code": code, "seconds": seconds,
            "headline": headline(output) if code == 0 else f"FAILED (exit {code})", "output_tail": output[-4000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads for a faster pass")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    if unknown := [n for n in names if n not in BENCHMARKS]:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")

    start_machine = machine_info()
    results = [run(name, args.quick) for name in names]
    print("\n=== summary")
    print(format_table(["benchmark", "seconds", "result"], [[r["name"], r["seconds"], r["headline"]] for r in results]))
    path = write_results("summary", {"quick": args.quick, "machine_at_start": start_machine, "runs": results})
    print(f"wrote {path}")
    return 1 if any(r["exit_code"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
