"""A generative judge: a language model reads the question, the reference and the response, and rules.

The judge is asked to end with "Verdict: correct" or "Verdict: incorrect" (score 1.0 or 0.0); a
"Score: x/N" line is accepted too (scaled to 0..1). A judgment in neither form scores 0.0 with reason
"unparseable judgment": a judge that cannot say is no evidence of a good answer. Decoding is greedy, so
the same inputs get the same ruling.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from common.errors import UserError
from rewards.model_host import ModelHost, check_model_dir, torch_dtype
from rewards.registry import DetailedReward, RewardOutput, register_reward

DEFAULT_TEMPLATE = (
    "You are grading a response to a question.\n\nQuestion:\n{question}\n\nReference answer:\n{reference}\n\n"
    "Response:\n{completion}\n\nIs the response's final answer correct? Think briefly, then end with one "
    'line: "Verdict: correct" or "Verdict: incorrect".'
)
TEMPLATE_FIELDS = {"question", "reference", "completion"}
_VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(correct|incorrect)\b", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)


def parse_judgment(text: str, max_score: float = 10.0) -> RewardOutput:
    """The judge's ruling: its last verdict line, else its last score (out of its own denominator, else
    `max_score`), clipped to 0..1; otherwise 0.0 "unparseable judgment"."""
    verdicts = _VERDICT.findall(text)
    if verdicts:
        correct = verdicts[-1].lower() == "correct"
        return RewardOutput(float(correct), "judged correct" if correct else "judged incorrect")
    scores = _SCORE.findall(text)
    if scores:
        value, denominator = scores[-1]
        scale = float(denominator) if denominator and float(denominator) > 0 else max_score
        return RewardOutput(min(max(float(value) / scale, 0.0), 1.0), "judged score")
    return RewardOutput(0.0, "unparseable judgment")


def check_template(template: str) -> None:
    """A UserError unless the template's {fields} are among question, reference, completion."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UserError(f"judge template is not a valid format string: {exc}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown or "completion" not in fields:
        raise UserError(f"judge template fields must include {{completion}} and be among "
                        f"{sorted(TEMPLATE_FIELDS)}; got {sorted(fields)}")


class Judge:
    """A causal LM that writes judgments: chat template (when the tokenizer has one), greedy decoding."""

    def __init__(self, model_dir: str | Path, dtype: str = "float32", max_new_tokens: int = 64) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_model_dir(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch_dtype(dtype), local_files_only=True)
        self.model.eval()
        self.max_new_tokens = max_new_tokens

    def _render(self, request: str) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True)
        return request

    def judge(self, requests: list[str], batch_size: int = 8) -> list[str]:
        """The judge's text for each request."""
        import torch

        out: list[str] = []
        for i in range(0, len(requests), batch_size):
            batch = self.tokenizer([self._render(r) for r in requests[i : i + batch_size]], padding=True,
                                   return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                generated = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                                pad_token_id=self.tokenizer.pad_token_id)
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            out.extend(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return out


# Judge backends by name. "transformers" (generate()) lives here; "vllm", the default, is registered by
# grpo/rollout/judge.py beside the rollout engine that serves it (rewards sit below the RL core, so the
# engine is handed in from above rather than imported from here). Importing the grpo package registers it.
_HOSTS: dict[str, ModelHost] = {"transformers": ModelHost(Judge)}


def register_judge_backend(name: str, judge_class: type) -> None:
    """Make `backend: name` serve the judge with `judge_class` (a Judge subclass: same constructor and
    `judge(requests, batch_size)`). Registering a name again replaces it (modules may be re-imported)."""
    _HOSTS[name] = ModelHost(judge_class)


class GenerativeJudge(DetailedReward):
    """A judge model's ruling on each completion: 1.0 correct, 0.0 incorrect, or a score scaled to 0..1.

    Options: `model_path` (required: a causal LM directory), `backend` ("vllm", the default, or
    "transformers" for generate()), `template` (a format string with {question},
    {reference}, {completion}; default DEFAULT_TEMPLATE), `max_new_tokens` (64), `max_score` (10, for
    "Score: x" without a denominator), `batch_size` (8), `dtype` ("float32"), `ray_actor`, `num_gpus` (as
    reward_model). Columns `prompt` (the question) and `answer` (the reference), both optional.
    Reasons: judged correct, judged incorrect, judged score, unparseable judgment; details hold the text.
    """

    def score_with_details(
        self,
        completions: list[str],
        model_path: str,
        backend: str = "vllm",
        template: str = DEFAULT_TEMPLATE,
        max_new_tokens: int = 64,
        max_score: float = 10.0,
        batch_size: int = 8,
        dtype: str = "float32",
        ray_actor: bool = False,
        num_gpus: float = 0.0,
        prompt: list[Any] | None = None,
        answer: list[Any] | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        check_template(template)
        if backend not in _HOSTS:
            hint = (" (the vllm backend is registered by importing the grpo package, as the `grpo` command, "
                    "the RL loop and the pipeline stages do)" if backend == "vllm" else "")
            raise UserError(f"judge backend must be one of {sorted(_HOSTS)}, got {backend!r}{hint}")
        questions = prompt or [""] * len(completions)
        references = answer or [""] * len(completions)
        requests = [template.format(question=q, reference=r, completion=c)
                    for q, r, c in zip(questions, references, completions)]
        init = {"model_dir": str(model_path), "dtype": dtype, "max_new_tokens": max_new_tokens}
        texts = _HOSTS[backend].call("judge", init, ray_actor, num_gpus, requests, batch_size)
        outputs = []
        for text in texts:
            ruling = parse_judgment(text, max_score)
            outputs.append(RewardOutput(ruling.score, ruling.reason, {"judgment": text}))
        return outputs

    def close(self) -> None:
        for host in _HOSTS.values():
            host.close()


judge = register_reward("judge")(GenerativeJudge())
