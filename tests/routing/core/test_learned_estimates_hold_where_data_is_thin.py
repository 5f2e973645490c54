"""The learner's estimates where it has little data: a steady service's rare failures are not
a change, and a falling curve keeps falling past the point where the service stops being
chosen (both were lock-ins seen on the seeded replay, tests/performance/learner_replay.py)."""

import random

from routing.core.learning import OutcomeLearner


def test_two_failures_in_a_row_of_a_985_percent_service_do_not_wipe_its_history():
    learner = OutcomeLearner(seed=0)
    rng = random.Random(3)
    for _ in range(300):
        learner.observe("olap", "analysis", rng.random(), 0.95)
    before, _ = learner.estimates("analysis", 0.5, ["olap"])
    # Two failures back to back, then business as usual.
    learner.observe("olap", "analysis", 0.5, 0.0)
    learner.observe("olap", "analysis", 0.52, 0.0)
    arm = learner._arms[("olap", "analysis")]
    assert arm.drifts == 0
    after, _ = learner.estimates("analysis", 0.5, ["olap"])
    # Two failures among ~60 outcomes near c = 0.5 move the estimate a little, not to nothing.
    assert before[0] > 0.93
    assert after[0] > 0.9, (before, after)


def test_a_service_that_fails_every_call_is_still_caught_by_its_third_failure():
    learner = OutcomeLearner(seed=0)
    rng = random.Random(4)
    for _ in range(300):
        learner.observe("olap", "analysis", rng.random(), 0.95)
    for i in range(5):
        learner.observe("olap", "analysis", 0.5, 0.0)
        assert learner._arms[("olap", "analysis")].drifts == (0 if i < 2 else 1)
    # Five failures after 300 successes: below a competitor at 0.8 already, everywhere.
    after, _ = learner.estimates("analysis", 0.5, ["olap"])
    assert after[0] < 0.8
    assert learner.estimates("analysis", 0.1, ["olap"])[0][0] < 0.85


def test_a_falling_curve_keeps_falling_where_the_service_was_not_tried():
    """Outcomes only below c = 0.6, reward 1 - c: at c = 0.9 the estimate follows the trend
    (about 0.1), not the arm's mean (about 0.7)."""
    learner = OutcomeLearner(seed=0)
    rng = random.Random(5)
    for _ in range(600):
        c = 0.6 * rng.random()
        learner.observe("small", "inference", c, 1.0 - c)
    at_06 = learner.estimates("inference", 0.6, ["small"])[0][0]
    at_09 = learner.estimates("inference", 0.9, ["small"])[0][0]
    assert abs(at_06 - 0.4) < 0.05
    assert at_09 < 0.3, at_09
