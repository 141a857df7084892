"""The checker pool under hostile input: verdicts within the limit, workers replaced, the pool alive."""

import os
import signal
import threading
import time

import pytest

from rewards import get_reward
from rewards.math_equiv import Verdict
from rewards.verify_pool import VerifyPool

# Time limits are generous multiples of what is asked so a loaded machine cannot fail them; they check
# "does not hang", not speed.
SLACK_S = 20.0


@pytest.fixture(scope="module")
def pool():
    pool = VerifyPool(num_workers=2)
    yield pool
    pool.close()


def _pids(pool):
    return [w.process.pid for w in pool._workers]


def test_pathological_answers_end_as_timeout_or_invalid_and_the_pool_survives():
    deep_fraction = "\\frac{1}{" * 300 + "2" + "}" * 300
    completions = [
        r"\boxed{9^{9^{9}}}",
        "\\boxed{" + "{" * 500_000 + "1" + "}" * 500_000 + "}",  # a megabyte of braces
        f"\\boxed{{{deep_fraction}}}",
        r"\boxed{2}",
    ]
    reward = get_reward("math_accuracy")
    start = time.monotonic()
    outputs = reward.score_with_details(completions, answer=["1", "1", "1", "2"], timeout_s=2.0,
                                        max_answer_chars=5000)
    assert time.monotonic() - start < SLACK_S
    assert outputs[0].reason == "timeout"
    assert outputs[1].reason == "invalid" and "max_answer_chars" in outputs[1].details["detail"]
    assert outputs[2].reason in ("timeout", "invalid")  # exponential parse time, or too deep to recurse
    assert outputs[3].reason == "correct"  # the pool still answers after all that
    assert reward([r"\boxed{\frac{1}{2}}"], answer=["0.5"]) == [1.0]


def test_a_worker_stuck_beyond_signals_is_killed_at_the_deadline_and_replaced(pool):
    pool.start()  # every worker is up and idle
    stuck = _pids(pool)
    for pid in stuck:
        os.kill(pid, signal.SIGSTOP)  # like a C call no signal handler interrupts
    start = time.monotonic()
    verdicts = pool.check([("2", "2"), ("3", "3")], timeout_s=1.0)
    assert time.monotonic() - start < SLACK_S
    assert [v for v, _ in verdicts] == [Verdict.TIMEOUT, Verdict.TIMEOUT]
    assert "killed" in verdicts[0][1]
    assert set(_pids(pool)).isdisjoint(stuck)
    assert pool.check([("4", "4")], timeout_s=10) == [(Verdict.CORRECT, "")]


def test_a_worker_killed_while_idle_is_replaced_on_the_next_batch(pool):
    pool.start()
    victim = _pids(pool)[0]
    os.kill(victim, signal.SIGKILL)
    pool._workers[0].process.wait()
    verdicts = pool.check([(str(n), str(n)) for n in range(6)], timeout_s=10)
    assert [v for v, _ in verdicts] == [Verdict.CORRECT] * 6
    assert victim not in _pids(pool)


def test_checks_run_from_threads_which_signal_based_timeouts_cannot(pool):
    results = {}

    def work(n):
        results[n] = pool.check([(f"\\frac{{{n}}}{{2}}", str(n / 2))], timeout_s=10)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[n] == [(Verdict.CORRECT, "")] for n in range(4))


def test_close_stops_the_workers_and_a_later_check_restarts_them():
    pool = VerifyPool(num_workers=1)
    pool.check([("1", "1")], timeout_s=10)
    [process] = [w.process for w in pool._workers]
    pool.close()
    assert process.poll() is not None
    assert pool.check([("1", "2")], timeout_s=10) == [(Verdict.WRONG, "")]
    pool.close()


def test_a_nonpositive_timeout_is_refused(pool):
    with pytest.raises(ValueError, match="timeout_s"):
        pool.check([("1", "1")], timeout_s=0)
