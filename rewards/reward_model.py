"""A Bradley-Terry reward model: scoring, pairwise training, and the "reward_model" reward.

A reward model is a transformers sequence-classification model with one output; a causal-LM directory
(ours from `grpo models make`, or a hub checkpoint) loads as one with a freshly initialised score head. The
score of (prompt, completion) is the head's output at the last token of prompt + completion; long inputs
are cut from the left, so the end of the completion (where the answer is) is always seen.

Training is pairwise (Bradley-Terry, as in InstructGPT and Llama 2): for a preferred and a rejected
completion of the same prompt, minimise -log sigmoid(r_chosen - r_rejected - margin). Data: JSONL rows
{"prompt", "chosen", "rejected"} (TRL's RewardTrainer format) with an optional numeric "margin".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import UserError
from common.jsonl import read_json_objects
from rewards.model_host import ModelHost, check_model_dir, torch_dtype
from rewards.registry import DetailedReward, RewardOutput, register_reward

if TYPE_CHECKING:  # torch is imported where it is used, to keep `import rewards` light (model_host.py)
    import torch


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of -log sigmoid(chosen - rejected - margin) over the pairs (1-D tensors of scores)."""
    import torch.nn.functional as F

    difference = chosen - rejected
    if margin is not None:
        difference = difference - margin
    return -F.logsigmoid(difference).mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs the model orders correctly (ties count as wrong)."""
    return float((chosen > rejected).float().mean())


class RewardModel:
    """A one-output sequence classifier that scores (prompt, completion) pairs."""

    def __init__(self, model_dir: str | Path, dtype: str = "float32", max_length: int = 1024) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_model_dir(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=1, dtype=torch_dtype(dtype), local_files_only=True)
        if self.model.config.pad_token_id is None:  # the head pools at the last non-pad token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = max_length

    def scores(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """Scores as a 1-D tensor, with gradients (for training)."""
        batch = self.tokenizer([p + c for p, c in zip(prompts, completions)], padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return self.model(**batch).logits[:, 0].float()

    def score(self, prompts: list[str], completions: list[str], batch_size: int = 8) -> list[float]:
        """Scores as floats, in batches, without gradients."""
        import torch

        self.model.eval()
        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(completions), batch_size):
                out.extend(self.scores(prompts[i : i + batch_size], completions[i : i + batch_size]).tolist())
        return out

    def save(self, out_dir: str | Path) -> None:
        """Write a directory that `RewardModel(out_dir)` (and `from_pretrained`) loads."""
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)


def load_preference_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Rows {"prompt", "chosen", "rejected", "margin"?} of a JSONL file; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"preference file {path} does not exist")
    pairs = []
    for number, row in read_json_objects(path):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{path}: line {number}: needs a text field {key!r} (rows: prompt, chosen, rejected)")
        if not isinstance(row.get("margin", 0.0), (int, float)):
            raise UserError(f"{path}: line {number}: 'margin' must be a number")
        pairs.append(row)
    if not pairs:
        raise UserError(f"{path}: no preference pairs")
    return pairs


@dataclass
class RewardModelTraining:
    """Options of `train_reward_model` (TRL-like names)."""

    epochs: int = 1
    lr: float = 1e-5
    batch_size: int = 8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0


def _pair_scores(model: RewardModel, pairs: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    prompts = [p["prompt"] for p in pairs]
    both = model.scores(prompts + prompts, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs])
    return both[: len(pairs)], both[len(pairs) :]


def evaluate_pairs(model: RewardModel, pairs: list[dict[str, Any]], batch_size: int = 8) -> dict[str, float]:
    """Mean Bradley-Terry loss and pairwise accuracy on `pairs`, without gradients."""
    import torch

    model.model.eval()
    chosen, rejected = [], []
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            c, r = _pair_scores(model, pairs[i : i + batch_size])
            chosen.append(c)
            rejected.append(r)
    c, r = torch.cat(chosen), torch.cat(rejected)
    margin = torch.tensor([float(p.get("margin", 0.0)) for p in pairs])
    return {"loss": float(bradley_terry_loss(c, r, margin)), "accuracy": pairwise_accuracy(c, r)}


def train_reward_model(
    model: RewardModel, pairs: list[dict[str, Any]], config: RewardModelTraining
) -> list[dict[str, float]]:
    """Train `model` in place on preference pairs; returns each epoch's mean training loss and accuracy."""
    import torch

    generator = random.Random(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = []
    for epoch in range(config.epochs):
        model.model.train()
        order = list(range(len(pairs)))
        generator.shuffle(order)
        losses, correct = [], 0
        for i in range(0, len(order), config.batch_size):
            batch = [pairs[j] for j in order[i : i + config.batch_size]]
            chosen, rejected = _pair_scores(model, batch)
            margin = torch.tensor([float(p.get("margin", 0.0)) for p in batch])
            loss = bradley_terry_loss(chosen, rejected, margin)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.model.parameters(), config.max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()) * len(batch))
            correct += int((chosen > rejected).sum())
        history.append({"epoch": epoch + 1, "loss": sum(losses) / len(pairs), "accuracy": correct / len(pairs)})
        if not math.isfinite(history[-1]["loss"]):
            raise UserError(f"reward model training diverged at epoch {epoch + 1} (loss {history[-1]['loss']}); "
                            "lower lr")
    return history


REWARD_MODEL_HOST = ModelHost(RewardModel)  # shared with the process reward model (rewards/steps.py)


class ModelReward(DetailedReward):
    """The score of a trained reward model (unbounded; its scale is whatever training gave it).

    Options: `model_path` (required: a directory written by `grpo rewards train-rm` or any one-output
    sequence classifier), `batch_size` (8), `max_length` (tokens, 1024), `dtype` ("float32"),
    `ray_actor` (false: load in this process; true: in a Ray actor of its own), `num_gpus` (for the actor).
    Column `prompt` (optional): scored as prompt + completion, else the completion alone.
    """

    def score_with_details(
        self,
        completions: list[str],
        model_path: str,
        batch_size: int = 8,
        max_length: int = 1024,
        dtype: str = "float32",
        ray_actor: bool = False,
        num_gpus: float = 0.0,
        prompt: list[Any] | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        prompts = [p if isinstance(p, str) else "" for p in (prompt or [""] * len(completions))]
        init = {"model_dir": str(model_path), "dtype": dtype, "max_length": max_length}
        scores = REWARD_MODEL_HOST.call("score", init, ray_actor, num_gpus, prompts, completions, batch_size)
        return [RewardOutput(float(s)) for s in scores]

    def close(self) -> None:
        REWARD_MODEL_HOST.close()


reward_model = register_reward("reward_model")(ModelReward())
