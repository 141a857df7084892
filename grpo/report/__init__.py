"""The offline run report: `write_report(run_dir)` writes <run_dir>/report/index.html with its PNG plots.

The page opens offline (plots embedded as data URIs; the same PNGs lie beside it for reuse) and shows the
run's state, where and why a stage failed, the stage table with before/after accuracies, each stage's
curves, eval results and best/worst sample completions. It is written at the end of every run and by
`grpo report RUN_DIR` at any time, also while the run is going on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from grpo.report.rundir import load_run, run_status

__all__ = ["write_report"]


def write_report(run_dir: str | Path) -> Path:
    """Write the report of the run in `run_dir`; return the path of its index.html."""
    from grpo.report import html, plots  # matplotlib loads only when a report is written, not for the CLI

    run = load_run(run_dir)
    out = Path(run_dir) / "report"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):  # plots of panels that no longer exist must not linger
        old.unlink()
    stage_plots = {}
    for stage in run.stages:
        panels = plots.plot_panels(stage.metrics())
        for panel, png in panels.items():
            (out / f"{_slug(stage.name)}-{panel.slug}.png").write_bytes(png)
        stage_plots[stage.name] = panels
    page = html.render(run, run_status(run), stage_plots)
    index, tmp = out / "index.html", out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)  # a browser reloading mid-write sees the old page or the new, never half
    return index


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
