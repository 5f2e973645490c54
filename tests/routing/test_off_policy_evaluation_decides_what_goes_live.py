"""Off-policy evaluation on logged decisions: the estimators recover a policy's value from
another policy's log, a worse candidate is refused, a better one accepted, and a candidate
the log says little about is refused for lack of support (effective sample size)."""

import random

import numpy as np
import pytest

from routing.core import offpolicy
from routing.core.learning import LearnerConfig, OutcomeLearner
from routing.core.offpolicy import LoggedDecision
from routing.core.types import RouteRequest
from routing.training import Example, evaluate_candidate

TRUE = {"a": 0.9, "b": 0.5, "c": 0.3}
SERVICES = ("a", "b", "c")


def logged(n, seed, chooser):
    """Decisions logged by ``chooser`` (returns service, propensity); Bernoulli rewards."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        c = rng.random()
        service, p = chooser(rng)
        reward = 1.0 if rng.random() < TRUE[service] else 0.0
        out.append(Example(RouteRequest(request_type="t", complexity=c), service, bool(reward),
                           None, reward, SERVICES, p))  # fmt: skip
    return out


def uniform(rng):
    return rng.choice(SERVICES), 1 / 3


def learner_believing(rewards, n=300):
    learner = OutcomeLearner(LearnerConfig(), seed=0)
    rng = random.Random(1)
    for _ in range(n):
        for sid, r in rewards.items():
            learner.observe(sid, "t", rng.random(), r)
    return learner


GOOD = {"a": 0.9, "b": 0.5, "c": 0.3}
BAD = {"a": 0.2, "b": 0.8, "c": 0.3}  # believes b is best


def test_estimators_recover_the_value_of_always_choosing_a_from_a_uniform_log():
    rows = [
        LoggedDecision(
            "t", ex.request.complexity, SERVICES, ex.service_id, ex.propensity, ex.reward
        )  # fmt: skip
        for ex in logged(6000, 0, uniform)
    ]
    always_a = lambda row: np.array([1.0, 0.0, 0.0])  # noqa: E731
    model = lambda row: np.array([0.5, 0.5, 0.5])  # noqa: E731 - a poor model: DR still right
    est = offpolicy.estimate(rows, always_a, model)
    assert est.ips == pytest.approx(0.9, abs=0.04)
    assert est.snips == pytest.approx(0.9, abs=0.03)
    assert est.dr == pytest.approx(0.9, abs=0.04)
    assert est.ess == pytest.approx(2000, rel=0.1)  # a third of the log supports it


def test_a_worse_candidate_is_refused_and_a_better_one_accepted():
    held_out = logged(1500, 2, uniform)
    good, bad = learner_believing(GOOD), learner_believing(BAD)

    refused = evaluate_candidate(bad, good, held_out, confidence=0.95, min_ess=30)
    accepted = evaluate_candidate(good, bad, held_out, confidence=0.95, min_ess=30)

    assert not refused["better"]
    assert refused["improvement"] < 0 and refused["lower_bound"] < 0
    assert accepted["better"]
    assert accepted["lower_bound"] > 0
    assert accepted["candidate"]["dr"] == pytest.approx(0.9 * 0.98 + 0.02 * 0.57, abs=0.05)


def test_with_no_active_version_the_candidate_must_beat_a_cold_start():
    held_out = logged(1500, 3, uniform)
    verdict = evaluate_candidate(learner_believing(GOOD), None, held_out, 0.95, 30)
    assert verdict["against"] == "cold start (no active version)"
    # A learner that knows nothing picks uniformly: the mean of the true rewards.
    assert verdict["baseline"]["dr"] == pytest.approx(np.mean(list(TRUE.values())), abs=0.05)
    assert verdict["logged"]["dr"] == pytest.approx(np.mean(list(TRUE.values())), abs=0.05)
    assert verdict["better"]


def test_a_candidate_no_better_than_a_cold_start_is_refused():
    held_out = logged(1500, 6, uniform)
    clueless = learner_believing({"a": 0.5, "b": 0.5, "c": 0.5})
    verdict = evaluate_candidate(clueless, None, held_out, 0.95, 30)
    assert not verdict["better"]


def test_a_candidate_the_log_barely_supports_is_refused():
    # The log only ever tried b (deterministic, propensity 1): it says almost nothing about a.
    held_out = logged(1500, 4, lambda rng: ("b", 1.0))
    verdict = evaluate_candidate(learner_believing(GOOD), None, held_out, 0.95, min_ess=30)
    assert not verdict["better"]
    # Every weight is equally small, so the Kish ESS stays high; the mean weight tells.
    assert verdict["candidate"]["support"] < 0.05
    assert "too little support" in verdict["decision"]


def test_rows_without_a_propensity_are_not_used():
    held_out = logged(100, 5, lambda rng: ("a", None))
    verdict = evaluate_candidate(learner_believing(GOOD), None, held_out, 0.95, 30)
    assert verdict["usable"] == 0
    assert not verdict["better"]


def test_a_rarely_logged_choice_cannot_outweigh_the_rest_of_the_log():
    # One exploratory pick logged at propensity 0.001 that the target policy always makes.
    row = LoggedDecision("t", 0.5, SERVICES, "c", 0.001, 1.0)
    always_c = lambda row: np.array([0.0, 0.0, 1.0])  # noqa: E731
    zero = lambda row: np.zeros(3)  # noqa: E731
    est = offpolicy.estimate([row], always_c, zero)
    assert est.ips == pytest.approx(offpolicy.MAX_WEIGHT)  # not 1,000
