"""Sandbox throughput and leak check: executions per minute of a 10-test stdin/stdout submission.

    .venv/bin/python bench/bench_sandbox.py                 # 10,000 runs on a pool sized to the machine
    .venv/bin/python bench/bench_sandbox.py --runs 2000 --workers 2

Prints the wall-clock rate, the CPU time one execution costs (fork servers, their supervisors and test
processes, plus the grader), the rate that CPU cost allows on the machine's idle cores (the wall figure
depends on whatever else the machine runs: the load average is printed with it), and the pool's
descriptors, processes and memory before and after. Exits 1 if anything leaked.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Limits, Sandbox  # noqa: E402

# A typical competitive-programming submission: read a list, answer from it.
PROGRAM = """\
import sys
data = sys.stdin.read().split()
n = int(data[0])
values = list(map(int, data[1:1 + n]))
print(sum(values), max(values))
"""
TESTS = {
    "inputs": [f"{n}\n" + " ".join(str(i * 7 % 101) for i in range(n)) + "\n" for n in range(1, 11)],
    "outputs": [f"{sum(i * 7 % 101 for i in range(n))} {max(i * 7 % 101 for i in range(n))}\n" for n in range(1, 11)],
}
BATCH = 500


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes and their reaped descendants (utime, stime, cutime, cstime)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            total += sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    args = parser.parse_args()

    with Sandbox(workers=args.workers) as pool:
        print(f"pool: {pool.size} fork servers on {os.cpu_count()} cores; layers: {pool.layers['active']}")
        warm = pool.run_many([(PROGRAM, TESTS)] * 50, Limits())
        assert all(r.verdict == "passed" for r in warm), warm[0]
        before = pool.resources()
        servers = [worker.process.pid for worker in pool._workers]
        cpu_before, grader_before, start = _cpu_seconds(servers), time.process_time(), time.monotonic()
        done, failed = 0, 0
        while done < args.runs:
            batch = min(BATCH, args.runs - done)
            failed += sum(r.verdict != "passed" for r in pool.run_many([(PROGRAM, TESTS)] * batch))
            done += batch
        wall = time.monotonic() - start
        cpu = _cpu_seconds(servers) - cpu_before + time.process_time() - grader_before
        after = pool.resources()
        load = os.getloadavg()

    per_run_ms = cpu / done * 1000
    print(f"{done} executions of a {len(TESTS['inputs'])}-test submission in {wall:.1f}s: "
          f"{done / wall * 60:,.0f} executions/minute (load average {load[0]:.1f})")
    print(f"CPU per execution: {per_run_ms:.2f} ms -> {pool.size / (per_run_ms / 1000) * 60:,.0f} executions/minute "
          f"on {pool.size} idle cores")
    print(f"resources before: {before}")
    print(f"resources after:  {after}")
    leaked = {k: (before[k], after[k]) for k in ("server_fds", "server_children", "sandbox_processes", "grader_fds")
              if after[k] != before[k]}
    if after["server_rss_kb"] > before["server_rss_kb"] + 4096:
        leaked["server_rss_kb"] = (before["server_rss_kb"], after["server_rss_kb"])
    if failed:
        print(f"FAILED: {failed} executions did not pass")
    print(f"LEAK: {leaked}" if leaked else "no leak: descriptors, processes and memory unchanged")
    return 1 if leaked or failed else 0


if __name__ == "__main__":
    sys.exit(main())
