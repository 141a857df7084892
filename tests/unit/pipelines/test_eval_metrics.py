"""pass@k against the unbiased estimator computed by hand; maj@k including ties."""

import pytest

from pipelines.eval_metrics import maj_at_k, majority_vote, pass_at_k


@pytest.mark.parametrize("n,c,k,expected", [
    (5, 0, 1, 0.0),            # no correct sample
    (5, 5, 3, 1.0),            # all correct
    (5, 2, 1, 2 / 5),          # pass@1 = c / n
    (5, 2, 2, 1 - 3 / 10),     # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    (4, 1, 4, 1.0),            # n - c < k: some draw must include the correct one
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    """pass@k = 1 - C(n-c, k) / C(n, k)."""
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_majority_plain():
    assert majority_vote(["7", "8", "7"]) == "7"
    assert maj_at_k(["7", "8", "7"], [True, False, True]) == 1.0
    assert maj_at_k(["8", "8", "7"], [False, False, True]) == 0.0


def test_majority_tie_goes_to_first_seen():
    """Tie between a wrong answer seen first and a right one: the first-seen (wrong) answer wins."""
    assert majority_vote(["8", "7", "7", "8"]) == "8"
    assert maj_at_k(["8", "7", "7", "8"], [False, True, True, False]) == 0.0
    assert maj_at_k(["7", "8", "8", "7"], [True, False, False, True]) == 1.0


def test_majority_ignores_missing_answers():
    assert majority_vote([None, "", "3", None]) == "3"
    assert maj_at_k([None, None], [False, False]) == 0.0
