"""PNG plots of a stage's metrics, one panel per family of the naming scheme in grpo/metrics.py.

Matplotlib's object API (Figure, no pyplot) renders with Agg and touches no global backend state, so
writing a report from inside a training process changes nothing else in it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.figure import Figure


@dataclass(frozen=True)
class Panel:
    """A plot of the metrics whose names match `keys` (a key ending in "/" matches that prefix)."""

    slug: str
    title: str
    keys: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    right: tuple[str, ...] = ()  # drawn on a second y axis (fractions beside token counts)
    stacked: bool = False  # parts of a whole (timing breakdown)


PANELS = (
    Panel("reward", "Reward (mean ± std, components)", ("reward/",), exclude=("reward/std", "reward/errors")),
    Panel("accuracy", "Accuracy", ("accuracy",)),
    Panel("length", "Response length (tokens; clipped fraction right)", ("length/",), right=("length/clipped_frac",)),
    Panel("kl", "KL divergence", ("kl/",)),
    Panel("entropy", "Entropy", ("entropy",)),
    Panel("clip", "Clip fractions", ("clip_frac/", "tis/clipped_frac")),
    Panel("mismatch", "Rollout / learner log-prob mismatch", ("rollout/logprob_mismatch",)),
    # reward_overlapped ran inside the generate phase (grpo/metrics.py): stacking it would count it twice.
    Panel("timing", "Time per step by phase (s)", ("timing/",), exclude=("timing/reward_overlapped",), stacked=True),
    Panel("throughput", "Throughput (tokens/s)", ("throughput/",)),
    Panel("loss", "Loss terms", ("loss/",)),
    Panel("moe", "MoE expert load", ("moe/",)),
)
# Metrics of no panel above are drawn as small multiples, so a new metric shows up without a code change.
OTHER = Panel("other", "Other metrics", ())
SMOOTH_ABOVE = 30  # points; longer curves get a rolling mean over the faint raw line


def matches(panel: Panel, key: str) -> bool:
    def hit(patterns: tuple[str, ...]) -> bool:
        return any(key.startswith(p) if p.endswith("/") else key == p for p in patterns)

    return hit(panel.keys) and not hit(panel.exclude)


def assign_panels(keys: list[str]) -> dict[Panel, list[str]]:
    """Each metric name to the first panel that claims it, leftovers to OTHER; empty panels omitted."""
    assigned: dict[Panel, list[str]] = {}
    for key in sorted(keys):
        if key in ("step", "time"):
            continue
        panel = next((p for p in PANELS if matches(p, key)), OTHER)
        assigned.setdefault(panel, []).append(key)
    return {p: assigned[p] for p in (*PANELS, OTHER) if p in assigned}


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric. A resumed run logs the steps after its checkpoint again: the later
    record of a step wins, as it is the one the final model descends from."""
    by_step = {int(r["step"]): float(r[key]) for r in rows if key in r and "step" in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def rolling_mean(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values (the first points average what exists so far)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_panels(rows: list[dict]) -> dict[Panel, bytes]:
    """PNG bytes of every panel that has data, in panel order."""
    keys = sorted({k for r in rows for k in r})
    return {panel: _render(panel, names, rows) for panel, names in assign_panels(keys).items()}


def _render(panel: Panel, names: list[str], rows: list[dict]) -> bytes:
    if panel is OTHER:
        return _small_multiples(names, rows)
    fig = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    left = [n for n in names if n not in panel.right]
    if panel.stacked:
        steps, _ = series(rows, left[0])
        columns = [[r.get(n, 0.0) for r in _rows_at(rows, steps)] for n in left]
        ax.stackplot(steps, columns, labels=[_short(n) for n in left], alpha=0.8)
    else:
        for name in left:
            _line(ax, *series(rows, name), label=_short(name))
        if panel.slug == "reward":
            _std_band(ax, rows)
    if right := [n for n in names if n in panel.right]:
        twin = ax.twinx()
        for name in right:
            _line(twin, *series(rows, name), label=_short(name), color="tab:red", style="--")
        twin.set_ylabel(", ".join(_short(n) for n in right), color="tab:red")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _small_multiples(names: list[str], rows: list[dict], cols: int = 3) -> bytes:
    nrows = -(-len(names) // cols)
    fig = Figure(figsize=(9.6, 2.0 * nrows), dpi=100, layout="constrained")
    fig.suptitle(OTHER.title, fontsize=10)
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, cols, i + 1)
        _line(ax, *series(rows, name), label=name)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _png(fig)


def _line(ax, steps: list[int], values: list[float], *, label: str, color: str | None = None,
          style: str = "-") -> None:
    if len(values) > SMOOTH_ABOVE:
        (raw,) = ax.plot(steps, values, style, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, rolling_mean(values, max(2, len(values) // 20)), style, color=raw.get_color(),
                label=f"{label} (rolling mean)")
    else:
        ax.plot(steps, values, style, color=color, marker="o", markersize=3, label=label)


def _std_band(ax, rows: list[dict]) -> None:
    steps, mean = series(rows, "reward/mean")
    std_steps, std = series(rows, "reward/std")
    if steps and steps == std_steps:
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        alpha=0.15, label="reward ± std")


def _rows_at(rows: list[dict], steps: list[int]) -> list[dict]:
    last = {int(r["step"]): r for r in rows if "step" in r}
    return [last[s] for s in steps]


def _short(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
