"""Model-based rewards on a real tiny model: Bradley-Terry training and scoring, the generative judge."""

import json
import random

import pytest
import torch

from pipelines.cli import main
from common.errors import UserError
from rewards import get_reward
import grpo  # noqa: F401  registers the judge's default backend, vllm
from rewards.judge import check_template, parse_judgment
from rewards.reward_model import (
    RewardModel,
    RewardModelTraining,
    bradley_terry_loss,
    evaluate_pairs,
    load_preference_pairs,
    pairwise_accuracy,
    train_reward_model,
)


def _pairs(n: int, seed: int) -> list[dict]:
    """Sums where the preferred completion is right and says it checked; the rejected one is off."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        rows.append({"prompt": f"What is {a} + {b}? ", "chosen": f"The answer is {a + b}. I checked it.",
                     "rejected": f"The answer is {a + b + rng.randint(1, 9)}. Whatever."})
    return rows


def test_bradley_terry_loss():
    same = torch.tensor([0.3, -1.0])
    assert float(bradley_terry_loss(same, same)) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert float(bradley_terry_loss(torch.tensor([20.0]), torch.tensor([0.0]))) < 1e-6
    assert float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([20.0]))) == pytest.approx(20.0, abs=1e-4)
    # A margin asks for a bigger gap: the same scores cost more.
    gap, zero = torch.tensor([1.0]), torch.zeros(1)
    assert float(bradley_terry_loss(gap, zero, torch.tensor([2.0]))) > float(bradley_terry_loss(gap, zero))
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def trained_rm(tiny_qwen2_dir, tmp_path_factory):
    torch.manual_seed(0)  # the new score head's initialisation: the "before" accuracy must not depend on test order
    model = RewardModel(tiny_qwen2_dir)
    before = evaluate_pairs(model, _pairs(32, seed=1))
    history = train_reward_model(model, _pairs(64, seed=0), RewardModelTraining(epochs=3, lr=1e-3, batch_size=16))
    out = tmp_path_factory.mktemp("rm")
    model.save(out)
    return model, out, before, history


def test_training_learns_the_preference_and_generalises(trained_rm):
    model, _, before, history = trained_rm
    assert history[-1]["loss"] < history[0]["loss"]
    after = evaluate_pairs(model, _pairs(32, seed=1))  # prompts not seen in training
    assert after["accuracy"] >= 0.9 > before["accuracy"]
    assert after["loss"] < before["loss"]


def test_saved_model_scores_the_same_through_the_registered_reward(trained_rm):
    model, out, _, _ = trained_rm
    prompts = ["What is 2 + 3? ", "What is 2 + 3? "]
    completions = ["The answer is 5. I checked it.", "The answer is 9. Whatever."]
    reward = get_reward("reward_model")
    scores = reward(completions, prompt=prompts, model_path=str(out))
    assert scores == pytest.approx(model.score(prompts, completions), abs=1e-5)
    assert scores[0] > scores[1]
    reward.close()


@pytest.mark.slow  # actors on the session's Ray cluster
def test_reward_model_in_a_ray_actor_matches_in_process(trained_rm, ray_session):
    _, out, _, _ = trained_rm
    reward = get_reward("reward_model")
    args = (["The answer is 5. I checked it."],)
    kwargs = {"prompt": ["What is 2 + 3? "], "model_path": str(out)}
    try:
        assert reward(*args, **kwargs, ray_actor=True) == pytest.approx(reward(*args, **kwargs), abs=1e-5)
    finally:
        reward.close()


def test_ray_actor_without_a_cluster_is_a_user_error(trained_rm):
    """In a fresh process (this one may hold the session's Ray driver): no cluster, a clear UserError."""
    import subprocess
    import sys

    code = ("from common.errors import UserError\nfrom rewards.registry import get_reward\n"
            "try:\n    get_reward('reward_model')(['x'], model_path=%r, ray_actor=True)\n"
            "except UserError as exc:\n    print('USER ERROR:', exc)\n") % str(trained_rm[1])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "USER ERROR:" in result.stdout and "needs a running Ray cluster" in result.stdout, result.stderr[-2000:]


def test_preference_file_errors_name_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(UserError, match=r"pairs.jsonl: line 2: needs a text field 'chosen'"):
        load_preference_pairs(path)
    with pytest.raises(UserError, match="does not exist"):
        load_preference_pairs(tmp_path / "none.jsonl")


def test_train_rm_command(tiny_qwen2_dir, tmp_path, capsys):
    data, held_out = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(16, seed=0)))
    held_out.write_text("".join(json.dumps(r) + "\n" for r in _pairs(8, seed=1)))
    out = tmp_path / "rm"
    argv = ["rewards", "train-rm", "--model", str(tiny_qwen2_dir), "--data", str(data), "--eval-data",
            str(held_out), "--out", str(out), "--epochs", "1", "--lr", "1e-3", "--batch-size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "epoch 1: loss" in printed and "held out (8 pairs)" in printed
    assert (out / "config.json").is_file()
    assert len(RewardModel(out).score(["q"], ["a"])) == 1


@pytest.mark.parametrize(("text", "score", "reason"), [
    ("The steps add up.\nVerdict: correct", 1.0, "judged correct"),
    ("verdict = **Incorrect**", 0.0, "judged incorrect"),
    ("Verdict: incorrect. On reflection... Verdict: correct", 1.0, "judged correct"),  # the last one rules
    ("Score: 7/10", 0.7, "judged score"),
    ("score: 4", 0.4, "judged score"),
    ("Score: 15/10", 1.0, "judged score"),
    ("I am not sure.", 0.0, "unparseable judgment"),
    ("Verdict: correctish", 0.0, "unparseable judgment"),
])
def test_parse_judgment(text, score, reason):
    ruling = parse_judgment(text)
    assert (ruling.score, ruling.reason) == (pytest.approx(score), reason)


def test_judge_template_is_checked():
    check_template("{question} {completion}")
    with pytest.raises(UserError, match="completion"):
        check_template("{question} only")
    with pytest.raises(UserError, match="answer_key"):
        check_template("{completion} {answer_key}")
    with pytest.raises(UserError, match="not a valid format string"):
        check_template("{completion")


def test_judge_runs_a_real_model_deterministically(tiny_qwen2_dir):
    # A random tiny model writes noise: the plumbing (template, chat template, greedy generation through
    # vLLM, parsing) is what is tested; its rulings are "unparseable judgment", scored 0.0. Greedy decoding
    # of the same float32 model through vLLM and through transformers writes the same judgments.
    reward = get_reward("judge")
    kwargs = {"prompt": ["What is 2 + 3?", "What is 1 + 1?"], "answer": ["5", "2"],
              "model_path": str(tiny_qwen2_dir), "max_new_tokens": 8}
    try:
        first = reward.score_with_details(["It is 5.", "It is 3."], **kwargs)
        again = reward.score_with_details(["It is 5.", "It is 3."], **kwargs)
        with_hf = reward.score_with_details(["It is 5.", "It is 3."], backend="transformers", **kwargs)
    finally:
        reward.close()
    assert [o.details["judgment"] for o in first] == [o.details["judgment"] for o in again]
    assert [o.details["judgment"] for o in first] == [o.details["judgment"] for o in with_hf]
    assert all(o.details["judgment"] for o in first)
    assert all(o.score == parse_judgment(o.details["judgment"]).score for o in first)
    with pytest.raises(UserError, match="judge backend must be one of"):
        reward.score_with_details(["x"], backend="tgi", **kwargs)
