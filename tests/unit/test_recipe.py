"""Recipe validation: every recipe under recipes/ validates, and each kind of user mistake gets one clear
message naming its YAML path (and the valid choices), exit code 2 and no traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from common.errors import UserError
from grpo.recipe import apply_override, load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))

BASE = {
    "name": "t",
    "model": {"make": "tiny-qwen2"},
    "stages": [
        {"name": "warmup", "type": "sft", "data": {"source": "task:arithmetic", "n": 8}},
        {
            "name": "grpo",
            "type": "rl",
            "data": {"source": "task:arithmetic", "n": 8},
            "rewards": [{"name": "exact_match"}],
        },
    ],
}


def write(tmp_path: Path, recipe) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe) if not isinstance(recipe, str) else recipe)
    return path


def error_of(tmp_path: Path, recipe, overrides=(), capsys=None) -> str:
    """Run `grpo validate` and return its stderr; it must fail with exit code 2 and no traceback."""
    path = write(tmp_path, recipe)
    code = main(["validate", str(path), *overrides])
    out = capsys.readouterr()
    assert code == 2, out
    assert "Traceback" not in out.err
    return out.err


def mutate(fn):
    recipe = copy.deepcopy(BASE)
    fn(recipe)
    return recipe


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO)) for p in RECIPES])
def test_every_shipped_recipe_validates(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert "valid recipe" in capsys.readouterr().out
    # Every stage that generates holds its prompt budget and its new tokens within its engines' length.
    recipe = load_recipe(path)
    for stage in recipe.stages:
        if stage.type == "rl":
            sampling, engines = stage.rollout, stage.rollout
        elif stage.type in ("eval", "rejection_sampling", "distill"):
            sampling, engines = stage.sampling, recipe.sampling_engines(stage)
        else:
            continue
        assert (sampling.max_prompt_length or 1) + sampling.max_completion_length <= engines.max_model_len, stage.name
        if path.parent.name == "gpu":  # GPU recipes budget their prompts (hub models: no tokenizer here)
            assert sampling.max_prompt_length is not None, stage.name


def sampling_stage(kind: str, **fields) -> dict:
    stage = {"name": kind, "type": kind, "data": {"source": "task:arithmetic", "n": 8},
             "rewards": [{"name": "exact_match"}], **fields}
    if kind == "distill":
        stage.setdefault("max_length", 4096)
        stage["student"] = {"make": "tiny-qwen2"}
    return stage


@pytest.mark.parametrize("kind", ["eval", "rejection_sampling", "distill"])
def test_a_sampling_stage_whose_tokens_do_not_fit_is_refused(kind, tmp_path, capsys):
    recipe = mutate(lambda r: r["stages"].append(sampling_stage(
        kind, sampling={"max_prompt_length": 1024, "max_completion_length": 3072})))
    err = error_of(tmp_path, recipe, capsys=capsys)
    assert (f"stage '{kind}': 1024 prompt tokens (max_prompt_length) + 3072 new tokens (max_completion_length) = "
            "4096 do not fit max_model_len 1024 (from the default); give stage "
            f"'{kind}' rollout.max_model_len of at least 4096") in err
    # The stage's own rollout, or the RL stage's, makes room.
    recipe["stages"][-1]["rollout"] = {"max_model_len": 4096}
    assert load_recipe(write(tmp_path, recipe)).stages[-1].rollout.max_model_len == 4096
    del recipe["stages"][-1]["rollout"]
    recipe["stages"][1]["rollout"] = {"max_model_len": 4096}
    load_recipe(write(tmp_path, recipe))


def test_an_rl_stage_whose_tokens_do_not_fit_is_refused(tmp_path, capsys):
    err = error_of(tmp_path, mutate(lambda r: r["stages"][1].update(
        rollout={"max_completion_length": 1024})), capsys=capsys)
    assert ("stage 'grpo': 1024 new tokens (max_completion_length) + the prompt do not fit max_model_len 1024 "
            "(from the default); give stage 'grpo' rollout.max_model_len of at least 1024 + your longest prompt, "
            "or lower stages[1] (grpo).rollout.max_completion_length") in err


def test_a_distill_student_length_that_cuts_its_traces_is_refused(tmp_path, capsys):
    err = error_of(tmp_path, mutate(lambda r: r["stages"].append(sampling_stage(
        "distill", sampling={"max_prompt_length": 128, "max_completion_length": 512}, max_length=256))),
        capsys=capsys)
    assert "stage 'distill': max_length 256 cuts the student's training rows" in err
    assert "set max_length to at least 640" in err


def test_recipes_exist():
    assert (REPO / "recipes" / "tiny" / "r1.yaml") in RECIPES


def test_base_recipe_is_valid(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    assert [s.type for s in recipe.stages] == ["sft", "rl"]
    assert recipe.stages[1].algorithm.num_generations == 8  # documented default


CASES = {
    "unknown top-level key": (
        lambda r: r.update(nmae="x"),
        "nmae: unknown key (did you mean 'name'?); valid keys here: name, seed, output_dir, model, cluster, logging, "
        "stages",
    ),
    "typo in a nested key": (
        lambda r: r["stages"][1].update(rollout={"temprature": 0.7}),
        "stages[1] (grpo).rollout.temprature: unknown key (did you mean 'temperature'?)",
    ),
    "wrong type": (
        lambda r: r["stages"][1].update(algorithm={"beta": "a lot"}),
        "stages[1] (grpo).algorithm.beta: Input should be a valid number",
    ),
    "bad enum value": (
        lambda r: r["stages"][1].update(algorithm={"loss_type": "ppo"}),
        "stages[1] (grpo).algorithm.loss_type: 'ppo' is not a valid choice; choose one of: 'grpo', 'dapo' or 'dr_grpo'",
    ),
    "unknown stage type": (
        lambda r: r["stages"][0].update(type="pretrain"),
        "stages[0] (warmup): stage `type` 'pretrain' is not known; choose one of: 'sft', 'rl', 'eval'",
    ),
    "missing required key": (
        lambda r: r["stages"][0].pop("data"),
        "stages[0] (warmup).data: required key is missing",
    ),
    "out of range": (
        lambda r: r["stages"][1].update(steps=0),
        "stages[1] (grpo).steps: Input should be greater than or equal to 1",
    ),
    "both model sources": (
        lambda r: r["model"].update(path="somewhere"),
        "model: give exactly one of `make` (a preset to build), `path` (a model directory), `gguf` (a GGUF file) "
        "or `package` (a packaged model); got make, path",
    ),
    "duplicate stage names": (
        lambda r: r["stages"][1].update(name="warmup"),
        "stage name 'warmup' is used twice",
    ),
    "reference to a later stage": (
        lambda r: r["stages"][0].update(model="@grpo"),
        "stage 'warmup' refers to '@grpo', which is not an earlier stage (earlier stages: base)",
    ),
    "unknown reward": (
        lambda r: r["stages"][1].update(rewards=[{"name": "vibes"}]),
        "unknown reward 'vibes'; registered rewards:",
    ),
    "no stages": (lambda r: r.update(stages=[]), "stages: List should have at least 1 item"),
    "off-policy without its correction": (
        lambda r: r["stages"][1].update(rollout={"off_policy_steps": 1}, algorithm={"tis_cap": None}),
        "needs the truncated importance sampling correction: set algorithm.tis_cap",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_recipe_message(case, tmp_path, capsys):
    fn, expected = CASES[case]
    err = error_of(tmp_path, mutate(fn), capsys=capsys)
    assert expected in err, err
    assert str(tmp_path / "recipe.yaml") in err  # the message names the file


def test_missing_model_directory(tmp_path, capsys):
    err = error_of(tmp_path, mutate(lambda r: r.update(model={"path": "./no/such/model"})), capsys=capsys)
    assert "model.path: no Hugging Face model directory (config.json) at" in err
    assert "no/such/model" in err


def test_hub_ids_pass_validation_without_a_local_directory(tmp_path):
    recipe = load_recipe(write(tmp_path, mutate(lambda r: r.update(model={"path": "Qwen/Qwen2.5-Math-1.5B"}))))
    assert recipe.model.path == "Qwen/Qwen2.5-Math-1.5B"


def test_missing_recipe_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_not_a_mapping(tmp_path, capsys):
    err = error_of(tmp_path, "- just\n- a list\n", capsys=capsys)
    assert "a recipe must be a mapping" in err


def test_invalid_yaml(tmp_path, capsys):
    err = error_of(tmp_path, "name: [unclosed\n", capsys=capsys)
    assert "not valid YAML" in err


OVERRIDE_CASES = {
    "no equals sign": (["seed"], "override 'seed' must look like dotted.key=value"),
    "unknown stage name": (["stages.ppo.steps=3"], "no item named 'ppo' in 'stages'; use an index 0..1 or one of: warmup, grpo"),
    "index out of range": (["stages.7.steps=3"], "index 7 is out of range for 'stages' (2 items)"),
    "into a scalar": (["name.first=x"], "'name' is a value ('t'), not a section with keys"),
    "unknown key via override": (["stages.grpo.algorithm.betta=0.1"], "stages[1] (grpo).algorithm.betta: unknown key (did you mean 'beta'?)"),
    "wrong type via override": (["stages.grpo.steps=many"], "stages[1] (grpo).steps: Input should be a valid integer"),
    "bad enum via override": (["stages.grpo.template=fancy"], "'fancy' is not a valid choice; choose one of: 'r1_zero', 'chat' or 'plain'"),
}


@pytest.mark.parametrize("case", sorted(OVERRIDE_CASES))
def test_malformed_override_message(case, tmp_path, capsys):
    overrides, expected = OVERRIDE_CASES[case]
    err = error_of(tmp_path, BASE, overrides, capsys=capsys)
    assert expected in err, err


def test_overrides_by_name_and_index(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE), ["stages.grpo.steps=3", "stages.0.epochs=2.5",
                                                 "stages.grpo.algorithm.beta=1e-3", "seed=7"])
    assert recipe.seed == 7
    assert recipe.stages[1].steps == 3
    assert recipe.stages[1].algorithm.beta == pytest.approx(1e-3)
    assert recipe.stages[0].epochs == 2.5


def test_override_creates_missing_section():
    raw = copy.deepcopy(BASE)
    apply_override(raw, "stages.grpo.learner.lora.r=4")
    assert raw["stages"][1]["learner"]["lora"]["r"] == 4


def test_user_error_is_raised_not_printed(tmp_path):
    with pytest.raises(UserError):
        load_recipe(write(tmp_path, mutate(lambda r: r.update(bogus=1))))


def _command_paths(parser, prefix=()):
    """Every command path of the CLI, nested groups included (e.g. ("models", "make"))."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _command_paths(sub, prefix + (name,))


def test_help_of_every_command(capsys):
    """`grpo --help` and the help of every (sub)command exit 0 and describe the command."""
    from pipelines.cli import build_parser

    paths = list(_command_paths(build_parser()))
    assert {("validate",), ("run",), ("models", "make"), ("rewards", "score"), ("sandbox", "check"),
            ("sandbox", "run"), ("report",), ("runs",)} <= set(paths)
    for argv in [["--help"]] + [[*path, "--help"] for path in paths]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: grpo"), argv
        assert len(out.splitlines()) >= 3, out
