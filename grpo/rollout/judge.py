"""The generative judge (rewards/judge.py) served by a rollout engine: the reward's default `vllm` backend.

It lives here, above the rewards package, because it needs the RL core's vLLM engine; importing this module
registers it with the judge, and importing the grpo package does (grpo/__init__.py). The engine (torch, vLLM)
is imported when a judge is built, so that registering it stays as light as `import rewards`.
"""

from __future__ import annotations

from pathlib import Path

from rewards.judge import Judge, register_judge_backend
from rewards.model_host import check_model_dir


class VllmJudge(Judge):
    """The same judge served by a vLLM engine: batched, paged, and the engine the rollout workers use. The
    engine runs in vLLM's own engine-core process, so the reward's host process (the RL driver) keeps its
    threads."""

    def __init__(self, model_dir: str | Path, dtype: str = "float32", max_new_tokens: int = 64) -> None:
        from grpo.rollout.engine import RolloutEngine, SamplingConfig

        check_model_dir(model_dir)
        self.engine = RolloutEngine(model_dir, dtype=dtype, kv_cache_gib=0.5)
        self.tokenizer = self.engine.tokenizer
        self.sampling = SamplingConfig(temperature=0.0, max_tokens=max_new_tokens)

    def judge(self, requests: list[str], batch_size: int = 8) -> list[str]:
        """The judge's text for each request (vLLM schedules the whole list; batch_size is not needed)."""
        groups = self.engine.generate([self._render(r) for r in requests], 1, self.sampling)
        return [group[0].text for group in groups]

    def close(self) -> None:
        self.engine.close()


register_judge_backend("vllm", VllmJudge)
