"""Weights & Biases logging (logging.wandb): a real offline wandb run, fed through MetricsLogger the way the
runner feeds it, read back from its .wandb file with wandb's own record schema. No network, no login."""

from __future__ import annotations

import sys
from functools import partial

import pytest

from grpo.config import Recipe
from common.errors import UserError
from grpo.metrics import MetricsLogger, forwarding_to
from grpo.recipe import validate_recipe
from grpo.wandb_run import flatten, start_wandb
from run_builder import rl_metrics
from wandb_offline import of_type, offline_wandb, read_records, run_files, values  # noqa: F401 (a fixture)

STAGES = [{"name": "grpo", "type": "rl", "data": {"source": "task:arithmetic", "n": 8},
           "rewards": [{"name": "exact_match"}]}]


def recipe(options: dict | None) -> Recipe:
    """A recipe with `logging: {wandb: options}` (None: no logging section)."""
    raw = {"name": "wb", "model": {"make": "tiny-qwen2"}, "stages": STAGES}
    if options is not None:
        raw["logging"] = {"wandb": options}
    return validate_recipe(raw)


def test_every_step_goes_to_wandb_under_its_stage_with_its_jsonl_name(offline_wandb):
    run = start_wandb(recipe({"project": "grpo-tests", "mode": "offline", "tags": ["unit"]}), offline_wandb,
                      resume_id=None, quiet=True)
    for stage, steps in (("cold_start", 2), ("grpo", 3)):
        with forwarding_to(partial(run.log, stage)):
            logger = MetricsLogger(offline_wandb / "stages" / stage, tensorboard=False)
            for step in range(1, steps + 1):
                logger.log(step, rl_metrics(step) if stage == "grpo" else {"loss": 2.0 / step, "learner/lr": 1e-3})
            logger.close()
    run.summarize("eval", {"current": {"pass@1": 0.25, "mean_length": 31.0}, "note": "text is left out"})
    run.finish(failed=False)

    (path,) = run_files(offline_wandb)
    records = read_records(path)
    rows = [values(h.item) for h in of_type(records, "history")]
    assert [(row.get("cold_start/step"), row.get("grpo/step")) for row in rows] == [
        (1, None), (2, None), (None, 1), (None, 2), (None, 3)]
    assert rows[1]["cold_start/loss"] == 1.0 and rows[1]["cold_start/learner/lr"] == 1e-3
    for row, step in zip(rows[2:], (1, 2, 3)):
        assert {k for k in row if k.startswith("grpo/")} == {f"grpo/{k}" for k in rl_metrics(step)} | {"grpo/step"}
        assert all(row[f"grpo/{k}"] == pytest.approx(v) for k, v in rl_metrics(step).items())
    # each stage's curves are drawn against that stage's own step
    step_metrics = {metric.glob_name: metric.step_metric for metric in of_type(records, "metric")}
    assert step_metrics["grpo/*"] == "grpo/step" and step_metrics["cold_start/*"] == "cold_start/step"

    (run_record,) = of_type(records, "run")
    assert (run_record.project, run_record.display_name, list(run_record.tags)) == ("grpo-tests", "wb", ["unit"])
    config = values(run_record.config.update)
    assert config["name"] == "wb" and config["stages"][0]["name"] == "grpo"  # the resolved recipe
    summary = {key: value for update in of_type(records, "summary") for key, value in values(update.update).items()}
    assert summary["eval/current/pass@1"] == 0.25 and "eval/note" not in summary
    assert [e.exit_code for e in of_type(records, "exit")] == [0]


def test_a_rerun_logs_into_the_same_wandb_run(offline_wandb):
    first = start_wandb(recipe({}), offline_wandb, resume_id=None, quiet=True)
    first.log("grpo", 1, {"reward/mean": 0.1})
    first.finish(failed=True)
    again = start_wandb(recipe({}), offline_wandb, resume_id=first.id, quiet=True)
    again.log("grpo", 2, {"reward/mean": 0.2})
    again.finish(failed=False)
    files = run_files(offline_wandb)
    assert len(files) == 2 and all(path.name == f"run-{first.id}.wandb" for path in files)
    runs = [run for path in files for run in of_type(read_records(path), "run")]
    assert [(run.project, run.display_name) for run in runs] == [("grpo", "wb")] * 2  # the defaults
    assert [e.exit_code for path in files for e in of_type(read_records(path), "exit")] == [1, 0]


def test_wandb_stays_off_unless_the_recipe_asks_and_its_mode_allows(offline_wandb, monkeypatch):
    assert start_wandb(recipe(None), offline_wandb, resume_id=None, quiet=True) is None
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert start_wandb(recipe({}), offline_wandb, resume_id=None, quiet=True) is None
    assert not (offline_wandb / "wandb").exists()


def test_configured_but_not_installed_names_the_field_and_the_install_command(offline_wandb, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` meets where it is not installed
    with pytest.raises(UserError, match=r"logging\.wandb .*pip install 'grpo-toolkit\[wandb\]'"):
        start_wandb(recipe({"mode": "offline"}), offline_wandb, resume_id=None, quiet=True)


@pytest.mark.parametrize("options, message", [
    ({"mode": "sometimes"}, r"logging\.wandb\.mode: 'sometimes' is not a valid choice; choose one of: 'online'"),
    ({"projekt": "x"}, r"logging\.wandb\.projekt: unknown key.*project"),
    ({"tags": "unit"}, r"logging\.wandb\.tags: "),
])
def test_a_bad_logging_option_names_its_yaml_path(options, message):
    with pytest.raises(UserError, match=message):
        recipe(options)


def test_flatten_keeps_numbers_under_the_stage_prefix():
    assert flatten({"current": {"pass@1": 0.5}, "steps": 3, "ok": True, "note": "x"}, "eval") == {
        "eval/current/pass@1": 0.5, "eval/steps": 3}
