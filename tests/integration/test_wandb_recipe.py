"""A recipe run with `logging.wandb` (offline): the runner opens one W&B run, every SFT step reaches it under
the stage's name with the values of metrics.jsonl, the stage summary lands in the run summary, a rerun of
the run directory reopens the same W&B run, and piped output gets the plain progress lines."""

from __future__ import annotations

import json

from grpo.recipe import validate_recipe
from pipelines.runner import run_recipe
from wandb_offline import of_type, offline_wandb, read_records, run_files, values  # noqa: F401 (a fixture)


def test_a_recipe_run_logs_each_stage_step_to_one_wandb_run(offline_wandb, tiny_qwen2_dir, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_DIR")  # so W&B writes where a user's run would: <run_dir>/wandb
    run_dir = offline_wandb / "run"
    spec = validate_recipe({
        "name": "wb", "output_dir": str(run_dir), "model": {"path": str(tiny_qwen2_dir)},
        "logging": {"wandb": {"mode": "offline", "project": "grpo-tests"}},
        "stages": [{"name": "cold_start", "type": "sft", "template": "plain", "epochs": 1, "batch_size": 4,
                    "max_length": 64, "data": {"source": "task:arithmetic", "n": 12, "seed": 1}}]})
    state = run_recipe(spec, offline_wandb / "recipe.yaml", echo=lambda _: None)
    assert state["stages"]["cold_start"]["status"] == "finished"

    printed = capsys.readouterr().out  # not a terminal: plain lines, one per tenth of each bar
    assert "[cold_start] sft steps 3/3 (100%)" in printed and "wb stages 1/1 (100%)" in printed

    (path,) = run_files(run_dir)
    assert path.name == f"run-{state['wandb_id']}.wandb"
    records = read_records(path)
    metrics_file = run_dir / "stages" / "cold_start" / "metrics.jsonl"
    jsonl = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    rows = [values(h.item) for h in of_type(records, "history")]
    assert [row["cold_start/step"] for row in rows] == [r["step"] for r in jsonl] == [1, 2, 3]
    assert [row["cold_start/loss"] for row in rows] == [r["loss"] for r in jsonl]
    summary = {key: value for update in of_type(records, "summary") for key, value in values(update.update).items()}
    assert summary["cold_start/loss last"] == jsonl[-1]["loss"]

    run_recipe(spec, offline_wandb / "recipe.yaml", echo=lambda _: None)  # all finished: skipped
    assert [p.name for p in run_files(run_dir)] == [path.name] * 2
