"""Pure parts of the report: which panel draws a metric, the series behind a curve, picking and locating."""

from grpo.report.html import failure_location, pick_steps, traceback_tail
from grpo.report.plots import OTHER, assign_panels, rolling_mean, series

from run_builder import TRACEBACK, rl_metrics


def test_every_driver_metric_lands_in_its_panel():
    panels = {p.slug: names for p, names in assign_panels(list(rl_metrics(1)) + ["step", "time"]).items()}
    assert panels["reward"] == ["reward/format", "reward/math_accuracy", "reward/mean"]  # std is the band
    assert panels["length"] == ["length/clipped_frac", "length/max", "length/mean"]
    assert panels["timing"] == ["timing/generate", "timing/learner", "timing/reward", "timing/sync"]
    assert panels["kl"] == ["kl/ref"] and panels["entropy"] == ["entropy"] and panels["accuracy"] == ["accuracy"]
    assert panels["moe"] == ["moe/max_load/layer0"]
    # Names of no panel are still drawn, in the small multiples (reward/std too: its own curve shows groups
    # collapsing to equal rewards); "step" and "time" are not metrics.
    assert panels[OTHER.slug] == ["frac_zero_adv_groups", "reward/errors", "reward/std"]
    assert all("step" not in names and "time" not in names for names in panels.values())


def test_prefix_patterns_do_not_match_longer_names():
    panels = {p.slug: names for p, names in assign_panels(["entropy", "entropy_bonus", "accuracy@8"]).items()}
    assert panels == {"entropy": ["entropy"], "other": ["accuracy@8", "entropy_bonus"]}


def test_series_keeps_the_later_record_of_a_step_logged_twice_by_a_resumed_run():
    rows = [{"step": s, "x": float(s)} for s in (1, 2, 3, 4)] + [{"step": 3, "x": 30.0}, {"step": 4, "x": 40.0},
                                                                   {"step": 5, "y": 1.0}]
    assert series(rows, "x") == ([1, 2, 3, 4], [1.0, 2.0, 30.0, 40.0])
    assert series(rows, "absent") == ([], [])


def test_rolling_mean_averages_the_trailing_window():
    assert rolling_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert rolling_mean([], 3) == []


def test_pick_steps_keeps_first_and_last_and_spreads_the_rest():
    assert pick_steps([1, 2, 3], 8) == [1, 2, 3]
    picked = pick_steps(list(range(1, 101)), 5)
    assert picked == [1, 26, 51, 75, 100]


def test_failure_location_is_the_innermost_frame():
    assert failure_location(TRACEBACK) == 'File "/work/main/grpo/learner/learner.py", line 88, in train'
    assert failure_location("KeyError: 'x'") is None
    assert traceback_tail(TRACEBACK, 2).splitlines() == ['    raise RuntimeError("loss is NaN at micro-batch 3")',
                                                         "RuntimeError: loss is NaN at micro-batch 3"]


def test_overlapped_reward_time_is_not_stacked_as_a_phase():
    """It ran inside the generate phase; stacked beside it, the step would look that much longer."""
    panels = {p.slug: names for p, names in assign_panels(["timing/generate", "timing/reward",
                                                           "timing/reward_overlapped"]).items()}
    assert panels == {"timing": ["timing/generate", "timing/reward"], OTHER.slug: ["timing/reward_overlapped"]}
