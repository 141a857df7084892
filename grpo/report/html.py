"""The report page: one self-contained HTML file (inline CSS, plots as base64 data URIs, no scripts).

Every string that comes from the run (prompts, completions, errors, stage names) is escaped: a completion
is model output and may hold anything, markup included.
"""

from __future__ import annotations

import base64
import time
from html import escape

from grpo.report.plots import Panel, series
from grpo.report.rundir import RunView, StageView

TRACEBACK_LINES = 15  # the end of a traceback says where; its start is the runner's own frames
SAMPLE_STEPS = 8  # steps whose best/worst completions are shown (first, last, evenly between)
COMPLETION_CHARS = 4000

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #1d232a; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #d5dae0; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #d5dae0; padding: 4px 8px;
  text-align: left; vertical-align: top; } th { background: #f0f3f6; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: white; font-weight: 600; }
.finished { background: #2e7d32; } .running { background: #1565c0; } .failed { background: #c62828; }
.resumable { background: #ef6c00; } .pending { background: #78909c; }
.alert { border-left: 6px solid #c62828; background: #fdecea; padding: 8px 16px; margin: 16px 0; }
.alert.warn { border-color: #ef6c00; background: #fff4e5; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 12px; }
.plots img { width: 100%; border: 1px solid #e3e7eb; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; max-height: 420px; }
table.summary { margin: 0; font-size: 13px; } table.summary th { font-weight: 500; }
.muted { color: #5f6b77; } .best { color: #2e7d32; font-weight: 600; } .worst { color: #c62828; font-weight: 600; }
"""


def render(run: RunView, status: tuple[str, str], plots: dict[str, dict[Panel, bytes]]) -> str:
    """The page for `run`; `plots` maps a stage name to its panels' PNG bytes."""
    state, detail = status
    parts = [
        f"<h1>Run {escape(run.name)} <span class='badge {state}'>{state}</span></h1>",
        f"<p class='muted'>{escape(str(run.directory))} — {escape(detail)}<br>{_times(run)}</p>",
        *(_failure(s) for s in run.stages if s.status == "failed"),
        *(_interrupted(s) for s in run.stages if s.status == "running" and state != "running"),
        "<h2>Stages</h2>",
        _stage_table(run.stages) if run.stages else "<p>No stage has started yet.</p>",
    ]
    for stage in run.stages:
        if stage.status != "pending":
            parts.append(_stage_section(stage, plots.get(stage.name, {})))
    parts.append(f"<p class='muted'>Written {time.strftime('%Y-%m-%d %H:%M:%S')}. TensorBoard: "
                 f"<code>tensorboard --logdir {escape(str(run.directory / 'stages'))}</code></p>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(run.name)} report"
            f"</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def traceback_tail(text: str, lines: int = TRACEBACK_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def failure_location(text: str) -> str | None:
    """The innermost frame of a traceback ('File "x.py", line 3, in f'): where the error was raised."""
    frames = [line.strip() for line in text.splitlines() if line.strip().startswith('File "')]
    return frames[-1] if frames else None


def before_after(stage: StageView, metrics: list[dict]) -> str:
    """RL: accuracy (else mean reward) over the first and the last quarter of the steps; eval: each
    model's pass@1."""
    if stage.type == "eval":
        results = stage.results()
        return ", ".join(f"{label} {row['pass@1']:.3f}" for label, row in results.items() if "pass@1" in row)
    key = next((k for k in ("accuracy", "reward/mean") if any(k in r for r in metrics)), None)
    if key is None:
        return ""
    _, values = series(metrics, key)
    k = max(1, len(values) // 4)
    return f"{key} {sum(values[:k]) / k:.3f} → {sum(values[-k:]) / k:.3f}"


def pick_steps(steps: list[int], count: int = SAMPLE_STEPS) -> list[int]:
    """Up to `count` of `steps`: the first, the last and evenly spaced ones between."""
    if len(steps) <= count:
        return steps
    return sorted({steps[round(i * (len(steps) - 1) / (count - 1))] for i in range(count)})


def _times(run: RunView) -> str:
    started = [s.record["started"] for s in run.stages if "started" in s.record]
    text = f"started {_clock(min(started))}" if started else "not started"
    if "finished" in run.state:
        text += f", finished {_clock(run.state['finished'])}"
    return text


def _failure(stage: StageView) -> str:
    tb = stage.record.get("traceback", "")
    step = stage.last_step()
    after = f" after step {step}" + (f" of {stage.total_steps}" if stage.total_steps else "") if step else ""
    ckpt = stage.last_checkpoint
    where = failure_location(tb)
    return (
        f"<div class='alert'><h3>Stage {escape(stage.name)} ({escape(stage.type)}) failed{after}</h3>"
        f"<p><b>{escape(stage.record.get('error', 'no error recorded'))}</b></p>"
        + (f"<p>Raised at <code>{escape(where)}</code></p>" if where else "")
        + (f"<p>Last checkpoint: {escape(ckpt.name)}; <code>grpo run</code> on the same recipe resumes from it."
           "</p>" if ckpt else "")
        + (f"<p>End of the traceback:</p><pre>{escape(traceback_tail(tb))}</pre>" if tb else "")
        + "</div>"
    )


def _interrupted(stage: StageView) -> str:
    step = stage.last_step()
    ckpt = stage.last_checkpoint
    return (f"<div class='alert warn'>Stage {escape(stage.name)} stopped without finishing"
            + (f" after step {step}" if step else "") + " (the process is gone, no error was recorded)."
            + (f" <code>grpo run</code> resumes from {escape(ckpt.name)}." if ckpt else "") + "</div>")


def _stage_table(stages: list[StageView]) -> str:
    rows = ["<tr><th>stage</th><th>type</th><th>status</th><th>time</th><th>steps</th>"
            "<th>before → after</th><th>summary</th></tr>"]
    for s in stages:
        metrics = s.metrics()
        step = max((int(r["step"]) for r in metrics if "step" in r), default=None)
        steps = f"{step or 0}/{s.total_steps}" if s.total_steps else (str(step) if step else "")
        seconds = s.record.get("seconds")
        summary = s.record.get("summary") or {}
        rows.append(
            f"<tr><td>{escape(s.name)}</td><td>{escape(s.type)}</td>"
            f"<td><span class='badge {escape(s.status)}'>{escape(s.status)}</span></td>"
            f"<td>{_duration(seconds) if seconds is not None else ''}</td><td>{steps}</td>"
            f"<td>{escape(before_after(s, metrics))}</td><td>{summary_html(summary) if summary else ''}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def summary_html(value) -> str:
    """A stage summary as HTML, escaped once: a dict (rejection counts by reason, an eval's results per
    model) is a table of its keys, nested as deep as the summary is; a list is its items, comma-separated."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{summary_html(v)}</td></tr>" for k, v in value.items())
        return f"<table class='summary'>{rows}</table>"
    if isinstance(value, (list, tuple)):
        return ", ".join(summary_html(v) for v in value)
    return _number(value)


def _stage_section(stage: StageView, panels: dict[Panel, bytes]) -> str:
    parts = [f"<h2>{escape(stage.name)} <span class='muted'>({escape(stage.type)})</span></h2>"]
    if panels:
        images = "".join(
            f"<img alt='{escape(panel.title)}' title='{escape(panel.title)}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>" for panel, png in panels.items())
        parts.append(f"<div class='plots'>{images}</div>")
    if results := stage.results():
        parts.append(_results_table(results))
    if samples := stage.samples():
        parts.append(_samples(samples))
    if len(parts) == 1:
        parts.append("<p class='muted'>No metrics logged yet.</p>")
    return "\n".join(parts)


def _results_table(results: dict) -> str:
    columns = sorted({k for row in results.values() for k in row})
    head = "<tr><th>model</th>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join(f"<tr><td>{escape(label)}</td>"
                   + "".join(f"<td>{_number(row.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for label, row in results.items())
    return f"<h3>Results</h3><table>{head}{body}</table>"


def _samples(samples: list[dict]) -> str:
    by_step: dict[int, list[dict]] = {}
    for sample in samples:
        by_step.setdefault(int(sample.get("step", 0)), []).append(sample)
    shown = pick_steps(sorted(by_step))
    parts = [f"<h3>Sample completions</h3><p class='muted'>Best and worst completion of a group at "
             f"{len(shown)} of {len(by_step)} logged steps, with their reward components.</p>"]
    for step in shown:
        rows = "".join(_sample_row(s) for s in by_step[step])
        parts.append(f"<h4>Step {step}</h4><table><tr><th></th><th>reward</th><th>components</th>"
                     f"<th>prompt / completion</th></tr>{rows}</table>")
    return "\n".join(parts)


def _sample_row(sample: dict) -> str:
    which = str(sample.get("which", ""))
    components = "<br>".join(f"{escape(str(k))}: {_number(v)}" for k, v in (sample.get("components") or {}).items())
    completion = str(sample.get("completion", ""))
    cut = len(completion) - COMPLETION_CHARS
    if cut > 0:
        completion = completion[:COMPLETION_CHARS] + f"\n… ({cut} more characters)"
    return (f"<tr><td class='{escape(which)}'>{escape(which)}</td><td>{_number(sample.get('reward', ''))}</td>"
            f"<td>{components}</td><td><details><summary>prompt</summary><pre>{escape(str(sample.get('prompt', '')))}"
            f"</pre></details><pre>{escape(completion)}</pre></td></tr>")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _clock(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))
