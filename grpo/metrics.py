"""Per-step metrics: one JSON line per step (always) and TensorBoard event files (always).

Naming scheme (one scheme across stages): reward/mean and reward/<component>, accuracy, length/mean,
length/max, length/clipped_frac, clip_frac/low|high, kl/ref, entropy, rollout/logprob_mismatch,
moe/max_load/layer<i>, timing/<phase>, throughput/<what>.

RL rollout: timing/generate is the batch's wall time until its last group arrived. Groups are scored as they
arrive: timing/reward is the scoring time after that (the part the step waits for), timing/reward_overlapped
the scoring time hidden behind the generation of other groups (not a phase of its own: the report's stacked
timing panel leaves it out). rollout/weights_version is the weights version (learner steps) that sampled
the step's batch, rollout/staleness how many learner steps behind the learner it was (1 off-policy). Off-policy,
a batch's rollout timings are logged with the step that trains on it, though it was sampled during the step
before.

Weights & Biases (when the recipe sets `logging.wandb`, see grpo/wandb_run.py) gets the same names under the
stage's name, with the stage's own step as x-axis: `grpo/reward/mean` against `grpo/step` for a stage named
`grpo`, as TRL's `train/` prefix, one W&B run per recipe run.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# Where else every logged step goes in this process: the recipe's W&B run, set by the runner around each
# stage (forwarding_to), so the RL driver and SFT need not thread it through.
_forward: Callable[[int, dict[str, float]], None] | None = None


class MetricsLogger:
    def __init__(self, directory: str | Path, tensorboard: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.directory / "metrics.jsonl"
        self._file = self.jsonl_path.open("a")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.directory / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
        self._file.write(json.dumps({"step": step, "time": time.time(), **clean}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in clean.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if _forward is not None:
            _forward(step, clean)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


@contextmanager
def forwarding_to(sink: Callable[[int, dict[str, float]], None] | None) -> Iterator[None]:
    """Send every step any MetricsLogger logs inside the block to `sink(step, metrics)` too (None: nowhere)."""
    global _forward
    previous, _forward = _forward, sink
    try:
        yield
    finally:
        _forward = previous


def read_metrics(path: str | Path) -> list[dict]:
    """All step records; a line cut short by a crash (only the last line written can be) is skipped."""
    from grpo.report.rundir import read_jsonl

    return read_jsonl(Path(path))
