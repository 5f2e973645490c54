"""The replay's diagnosis (tests/performance/learner_replay.py ``--diagnose``) accounts for
every decision of the last phase, splits the clearly wrong picks by cause, and its shadow
learners see what the live one saw: on a stationary fleet, a learner fed the expected reward
of each outcome (no noise) ranks the services right where the live one went wrong, and the
learner told every service's outcome (the ceiling) does at least as well as the bandit."""

import pytest

from tests.performance import learner_replay

REQUESTS = 1500
LAST = "p3_requests_1001_1500"


@pytest.fixture(scope="module")
def diagnosed():
    return [learner_replay.replay("random", seed, REQUESTS, diagnose=True) for seed in (3, 41)]


def test_every_last_phase_decision_is_counted_once(diagnosed):
    for run in diagnosed:
        diagnosis = run["diagnosis"]
        kinds = sum(diagnosis.get(k, 0.0) for k in ("optimal", "explored", "near_tie", "wrong"))
        assert kinds == pytest.approx(1.0)
        # the same split as the phase figures
        for kind in ("optimal", "explored", "near_tie", "wrong"):
            assert diagnosis.get(kind, 0.0) == pytest.approx(run[LAST][kind])
        # every cause is a part of the wrong picks, and its regret a part of theirs
        for key, value in diagnosis.items():
            if key.startswith("wrong.") and not key.endswith("_regret"):
                assert value <= diagnosis["wrong"] + 1e-12, key
                assert diagnosis[key + "_regret"] <= diagnosis["wrong_regret"] + 1e-12, key


def test_the_noise_free_shadow_sees_the_live_design(diagnosed):
    wrong = sum(run["diagnosis"].get("wrong", 0.0) for run in diagnosed)
    assert wrong > 0.01  # these seeds have clearly wrong picks to explain
    right = sum(run["diagnosis"].get("wrong.noise_free_model_right", 0.0) for run in diagnosed)
    # Without noise the same model on the same outcomes' complexities ranks nearly all of
    # them right: the misses are statistical, not misspecification (120 seeds: 98%).
    assert right >= 0.8 * wrong
    # A stationary fleet: a drift reset would be a false alarm.
    assert all(run["diagnosis"]["drift_resets_per_run"] == 0 for run in diagnosed)


def test_the_full_information_ceiling_is_above_the_bandit():
    for seed in (3, 41):
        bandit = learner_replay.replay("random", seed, REQUESTS)[LAST]["optimal"]
        ceiling = learner_replay.replay_full_info("random", seed, REQUESTS)[LAST]["optimal"]
        assert ceiling >= bandit
