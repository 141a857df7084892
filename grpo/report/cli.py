"""`grpo report RUN_DIR` and `grpo runs [DIR]`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from grpo.report.rundir import find_runs, load_run, run_status


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write the HTML report of a run (curves, stage table, samples, failures)",
        description="Write RUN_DIR/report/index.html: a self-contained page (opens offline) with the run's "
        "state, the stage table with before/after accuracies, reward/accuracy/length/KL/entropy/timing "
        "curves, sample completions, and where and why a failed stage failed. Works on unfinished runs.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (holds run_state.json)")
    p.set_defaults(func=_report)

    p = subparsers.add_parser(
        "runs", help="list the runs under a directory with their state",
        description="List run directories under DIR (default: runs/) with their state: running, finished, "
        "failed, or resumable (`grpo run` on the same recipe continues it).")
    p.add_argument("directory", type=Path, nargs="?", default=Path("runs"), metavar="DIR")
    p.set_defaults(func=_runs)


def _report(args) -> int:
    from grpo.report import write_report

    print(write_report(args.run_dir))
    return 0


def _runs(args) -> int:
    runs = find_runs(args.directory)
    if not runs:
        print(f"no runs under {args.directory}")
        return 0
    table = [("RUN", "STATE", "STAGES", "UPDATED", "DETAIL")]
    for run_dir in runs:
        run = load_run(run_dir)
        state, detail = run_status(run)
        finished = sum(s.status == "finished" for s in run.stages)
        table.append((str(run_dir.relative_to(args.directory)) if run_dir != args.directory else str(run_dir),
                      state, f"{finished}/{len(run.stages)}", _age(run_dir), detail))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0


def _age(run_dir: Path) -> str:
    """Time since the run last wrote its state or a metrics line (run_state changes only between stages)."""
    files = [run_dir / "run_state.json", *run_dir.glob("stages/*/metrics.jsonl")]
    seconds = max(0.0, time.time() - max(f.stat().st_mtime for f in files))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"
