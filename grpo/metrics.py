"""Per-step metrics: one JSON line per step (always) and TensorBoard event files (always).

Naming scheme (one scheme across stages): reward/mean and reward/<component>, accuracy, length/mean,
length/max, length/clipped_frac, clip_frac/low|high, kl/ref, entropy, rollout/logprob_mismatch,
moe/max_load/layer<i>, timing/<phase>, throughput/<what>.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


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

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All step records; a line cut short by a crash (only the last line written can be) is skipped."""
    from grpo.report.rundir import read_jsonl

    return read_jsonl(Path(path))
