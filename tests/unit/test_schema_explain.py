"""Every recipe option documents itself: each schema field has a description, and `grpo explain PATH`
prints a field's type, default, choices and description."""

import typing

import pytest
from pydantic import BaseModel

from common.errors import UserError
from grpo.config import Recipe
from grpo.explain import explain
from pipelines.cli import main


def _models(annotation, seen: set) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in seen:
            seen.add(annotation)
            for field in annotation.model_fields.values():
                _models(field.annotation, seen)
        return
    for arg in typing.get_args(annotation):
        _models(arg, seen)


def test_every_schema_field_has_a_description():
    seen: set = set()
    _models(Recipe, seen)
    assert len(seen) >= 15  # the walk reaches the stages, their sections, data and reward specs
    missing = sorted(f"{model.__module__}.{model.__name__}.{name}" for model in seen
                     for name, field in model.model_fields.items() if not (field.description or "").strip())
    assert not missing, "schema fields without a description:\n  " + "\n  ".join(missing)


def test_explain_a_stage_field_by_stage_type():
    text = explain("stages.rl.rollout.temperature")
    assert "stages.rl.rollout.temperature" in text
    assert "type: float" in text and ">= 0" in text and "default: 1.0" in text
    assert "description:" in text


def test_explain_lists_the_choices_of_a_literal_and_of_a_registry():
    text = explain("learner.precision")  # a key of a stage type, without the stages. prefix
    assert "choices: float32, bf16" in text and "default: float32" in text and "stages.rl.learner.precision" in text
    assert "choices: grpo, dapo, dr_grpo" in explain("stages.rl.algorithm.loss_type")
    assert "default: null" in explain("stages.rl.algorithm.epsilon_high")


def test_explain_a_run_wide_field_and_a_section():
    assert "default: 0" in explain("seed")
    section = explain("stages.rl.learner")
    assert "keys: " in section and "lr" in section and "precision" in section


def test_explain_names_the_field_in_a_recipe_and_its_value(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\nmodel: {make: tiny-qwen2}\nstages:\n"
        "  - {name: grpo, type: rl, data: {source: 'task:arithmetic', n: 4}, rewards: [{name: exact_match}],\n"
        "     learner: {lr: 3.0e-5}}\n")
    text = explain("stages.grpo.learner.lr", recipe)
    assert "value in the recipe: 3e-05" in text and "default: 1e-05" in text
    assert "value in the recipe: 3e-05" in explain("stages.0.learner.lr", recipe)


@pytest.mark.parametrize(("path", "level", "valid"), [
    ("stages.rl.rollout.tempratur", "stages.rl.rollout", "temperature"),
    ("stages.nope.steps", "stages", "rl"),
    ("learner.nope", "stages.rl.learner", "precision"),
    ("nope", "the recipe", "stages"),
    ("stages.rl.steps.x", "stages.rl.steps", "no keys"),
])
def test_unknown_paths_name_the_valid_keys_at_that_level(path, level, valid):
    with pytest.raises(UserError) as info:
        explain(path)
    message = str(info.value)
    assert level in message and valid in message


def test_explain_command(capsys):
    assert main(["explain", "stages.rl.algorithm.beta"]) == 0
    out = capsys.readouterr().out
    assert "KL coefficient" in out and "default: 0.0" in out
    assert main(["explain", "stages.rl.algorithm.bta"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "beta" in err and "Traceback" not in err
