"""The registry, RewardSpec validation, and the composer's weighted sum and failure handling.

The user rewards registered here are what users bring (plain TRL-style functions), some of them broken
on purpose: the composer must survive them.
"""

import math

import pydantic
import pytest

from common.errors import UserError
from rewards import DetailedReward, RewardOutput, available_rewards, get_reward, register_reward
from rewards.accuracy import CHECKER
from rewards.compose import FALLBACK_SCORE, RewardComposer
from rewards.registry import reward_parameters
from rewards.spec import RewardSpec, parse_reward_specs

BUILT_INS = {"math_accuracy", "exact_match", "format", "tag_count", "language_consistency",
             "overlong_penalty", "cosine_length", "repetition_penalty"}


@register_reward("test_length_parity")
def length_parity(completions, **columns):
    """1.0 for an even-length completion (a plain user function: no details)."""
    return [float(len(c) % 2 == 0) for c in completions]


@register_reward("test_fails_on_boom")
def fails_on_boom(completions, **columns):
    """Raises when any completion says "boom" (so a batch fails, then only that sample)."""
    if any("boom" in c for c in completions):
        raise RuntimeError("cannot score boom")
    return [1.0] * len(completions)


@register_reward("test_nan_on_empty")
def nan_on_empty(completions, **columns):
    return [math.nan if not c else 1.0 for c in completions]


@register_reward("test_wrong_length")
def wrong_length(completions, **columns):
    return [1.0]


@register_reward("test_needs_column")
def needs_column(completions, difficulty, scale=1.0, **columns):
    return [scale * d for d in difficulty]


def test_built_ins_are_registered_on_import():
    assert BUILT_INS <= set(available_rewards())


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_reward("format")(length_parity)


def test_unknown_reward_is_a_user_error_listing_the_valid_names():
    with pytest.raises(UserError, match="unknown reward 'accuracy'.*math_accuracy"):
        get_reward("accuracy")


def test_reward_parameters_come_from_score_with_details_when_there_is_one():
    assert list(reward_parameters(get_reward("math_accuracy"))) == [
        "answer", "extractor", "timeout_s", "max_answer_chars", "num_workers"]
    assert list(reward_parameters(needs_column)) == ["difficulty", "scale"]
    assert reward_parameters(length_parity) == {}


def test_detailed_reward_call_returns_the_scores():
    class Half(DetailedReward):
        def score_with_details(self, completions, **columns):
            return [RewardOutput(0.5, "half") for _ in completions]

    assert Half()(["a", "b"]) == [0.5, 0.5]


def test_reward_spec_validates_name_options_and_weight():
    assert RewardSpec(name="math_accuracy", kwargs={"extractor": "boxed"}).weight == 1.0
    with pytest.raises(pydantic.ValidationError, match="unknown reward 'maths'.*math_accuracy"):
        RewardSpec(name="maths")
    with pytest.raises(pydantic.ValidationError, match="no option 'extracter'.*extractor"):
        RewardSpec(name="math_accuracy", kwargs={"extracter": "boxed"})
    with pytest.raises(pydantic.ValidationError, match="finite"):
        RewardSpec(name="format", weight=math.inf)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        RewardSpec(name="format", wieght=2)


def test_parse_reward_specs_from_names_weights_and_files(tmp_path):
    assert [(s.name, s.weight) for s in parse_reward_specs("format")] == [("format", 1.0)]
    specs = parse_reward_specs("math_accuracy:1, format:0.25")
    assert [(s.name, s.weight) for s in specs] == [("math_accuracy", 1.0), ("format", 0.25)]
    yaml_file = tmp_path / "rewards.yaml"
    yaml_file.write_text("- {name: math_accuracy, kwargs: {extractor: boxed}}\n- {name: format, weight: 0.5}\n")
    assert parse_reward_specs(str(yaml_file))[0].kwargs == {"extractor": "boxed"}
    json_file = tmp_path / "rewards.json"
    json_file.write_text('[{"name": "tag_count", "weight": 2}]')
    assert parse_reward_specs(str(json_file))[0].weight == 2.0


@pytest.mark.parametrize(("spec", "message"), [
    ("format:heavy", "weight 'heavy' of 'format' is not a number"),
    ("format,,tag_count", "empty reward name"),
    ("format:1,nope:2", "reward 2: name: unknown reward 'nope'"),
    ("missing.yaml", "does not exist"),
])
def test_parse_reward_specs_errors(spec, message):
    with pytest.raises(UserError, match=message):
        parse_reward_specs(spec)


def test_spec_file_errors_name_the_file_and_the_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: format}\n- {name: math_accuracy, kwargs: {extracter: boxed}}\n")
    with pytest.raises(UserError, match=r"bad.yaml: reward 2: .*no option 'extracter'"):
        parse_reward_specs(str(bad))
    bad.write_text("{name: format}\n")
    with pytest.raises(UserError, match="non-empty list"):
        parse_reward_specs(str(bad))


def test_composer_sums_weighted_components_and_keeps_reasons():
    composer = RewardComposer([
        RewardSpec(name="exact_match", weight=1.0, kwargs={"extractor": "answer_tag"}),
        RewardSpec(name="format", weight=0.5),
        RewardSpec(name="test_length_parity", weight=-2.0),
    ])
    completions = ["<think>a</think><answer>4</answer>", "<think>a</think><answer>5</answer>!"]
    scored = composer(completions, {"answer": ["4", "4"]})
    assert scored.components == {"exact_match": [1.0, 0.0], "format": [1.0, 0.0], "test_length_parity": [1.0, 0.0]}
    assert scored.totals == [pytest.approx(1.0 + 0.5 - 2.0), 0.0]
    assert scored.reasons["exact_match"] == ["correct", "wrong"]
    assert scored.reasons["format"] == ["ok", "text after </answer>"]
    assert scored.reasons["test_length_parity"] == ["", ""]
    assert scored.errors == []
    assert scored.sample(1)["reasons"]["format"] == "text after </answer>"


def test_a_raising_reward_is_retried_per_sample_and_only_the_bad_sample_falls_back():
    composer = RewardComposer([RewardSpec(name="test_fails_on_boom"), RewardSpec(name="test_length_parity")])
    scored = composer(["ok", "boom", "fine"], {})
    assert scored.components["test_fails_on_boom"] == [1.0, FALLBACK_SCORE, 1.0]
    assert scored.reasons["test_fails_on_boom"] == ["", "error", ""]
    assert scored.components["test_length_parity"] == [1.0, 1.0, 1.0]  # the other reward is untouched
    assert scored.errors == [{"reward": "test_fails_on_boom", "index": 1,
                              "error": "RuntimeError: cannot score boom", "completion": "boom"}]


def test_bad_outputs_count_as_failures():
    scored = RewardComposer([RewardSpec(name="test_nan_on_empty")])(["a", ""], {})
    assert scored.components["test_nan_on_empty"] == [1.0, FALLBACK_SCORE]
    assert "non-finite" in scored.errors[0]["error"]
    scored = RewardComposer([RewardSpec(name="test_wrong_length")])(["a", "b"], {})
    assert scored.components["test_wrong_length"] == [1.0, 1.0]  # per sample, one score is right
    assert scored.errors == []


def test_configuration_mistakes_stop_the_call_with_a_user_error():
    composer = RewardComposer([RewardSpec(name="test_needs_column", kwargs={"scale": 2.0})])
    assert composer(["a"], {"difficulty": [3]}).totals == [6.0]
    with pytest.raises(UserError, match="needs 'difficulty'.*columns given: answer"):
        composer(["a"], {"answer": ["1"]})
    with pytest.raises(UserError, match="collide"):
        composer(["a"], {"difficulty": [3], "scale": [1.0]})
    with pytest.raises(UserError, match="2 values for 1 completions"):
        composer(["a"], {"difficulty": [1, 2]})
    with pytest.raises(UserError, match="unknown answer extractor"):
        RewardComposer([RewardSpec(name="math_accuracy", kwargs={"extractor": "last"})])(["x"], {"answer": ["1"]})
    with pytest.raises(UserError, match="listed twice"):
        RewardComposer([RewardSpec(name="format"), RewardSpec(name="format", weight=2)])


def test_close_stops_the_math_workers():
    composer = RewardComposer([RewardSpec(name="math_accuracy")])
    assert composer([r"\boxed{2}"], {"answer": ["2"]}).totals == [1.0]
    assert CHECKER._pool is not None
    composer.close()
    assert CHECKER._pool is None
    assert composer([r"\boxed{3}"], {"answer": ["2"]}).totals == [0.0]  # usable again after close
