"""ComposedRewards.concat: groups scored one at a time (as the RL driver scores them while the rest generate)
add up to the scores of one call over all their completions, error indices included."""

from rewards import register_reward
from rewards.compose import ComposedRewards, RewardComposer
from rewards.spec import RewardSpec


@register_reward("test_concat_fails_on_x")
def fails_on_x(completions, **columns):
    if any("x" in c for c in completions):
        raise RuntimeError("no x")
    return [float(len(c)) for c in completions]


def test_groups_scored_apart_equal_one_call():
    composer = RewardComposer([RewardSpec(name="format", weight=0.5), RewardSpec(name="test_concat_fails_on_x")])
    completions = ["<think>a</think> <answer>1</answer>", "abc", "x marks", "<answer>2</answer>", "zz", "xx"]
    columns = {"prompt": ["p0"] * 3 + ["p1"] * 3}
    whole = composer(completions, columns)
    parts = [composer(completions[i : i + 3], {k: v[i : i + 3] for k, v in columns.items()}) for i in (0, 3)]
    assert ComposedRewards.concat(parts) == whole
    assert [e["index"] for e in whole.errors] == [2, 5]  # the failing samples, counted over all six
