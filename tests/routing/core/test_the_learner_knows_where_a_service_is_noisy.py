"""The learner's uncertainty follows the reward noise at each complexity, not one figure per
service: a service that always succeeds on simple requests and is a coin flip on complex ones
is nearly certain where it is reliable and uncertain where it is not."""

import random

import numpy as np
import orjson
import pytest

from routing.core.learning import LearnerConfig, OutcomeLearner
from routing.core.types import FleetSnapshot, ServiceSpec


def _learner(local_noise: bool) -> OutcomeLearner:
    learner = OutcomeLearner(LearnerConfig(local_noise=local_noise), seed=1)
    rng = random.Random(7)
    for _ in range(2000):
        c = rng.random()
        success = rng.random() < (0.995 if c < 0.5 else 0.5)
        learner.observe("svc", "inference", c, 1.0 if success else 0.0)
    return learner


def _sd(learner: OutcomeLearner, complexity: float) -> float:
    mean, _, score = learner.scores("inference", complexity, ["svc"])
    return float((score[0] - mean[0]) / learner.config.ucb)


def test_the_posterior_is_narrow_where_the_service_is_reliable_and_wide_where_it_is_not():
    learner = _learner(local_noise=True)
    reliable, coin_flip = _sd(learner, 0.1), _sd(learner, 0.9)
    # Noise variance ~0.005 against ~0.25 with the same evidence: sd ratio ~0.14 (0.2 with the
    # floor and the prior's pseudo-outcomes).
    assert reliable < 0.35 * coin_flip
    # ... and both are honest: about the standard error of a mean of the outcomes nearby.
    assert coin_flip == pytest.approx(np.sqrt(0.25 / 400), rel=0.6)


def test_with_one_noise_figure_per_arm_both_ends_look_alike():
    # The rule the learner had before: what the test above relies on is the local noise.
    learner = _learner(local_noise=False)
    assert _sd(learner, 0.1) == pytest.approx(_sd(learner, 0.9), rel=0.3)


def test_the_table_the_router_reads_has_the_same_uncertainty_as_scores():
    learner = _learner(local_noise=True)
    spec = ServiceSpec("svc", "inference", "http://127.0.0.1:9/", frozenset(), 100)
    snapshot = FleetSnapshot.build([spec])
    table = learner.table(snapshot, "inference")
    for c in (0.1, 0.45, 0.9):
        mean, _, score = table.at(c)
        want_mean, _, want_score = learner.scores("inference", c, ["svc"])
        assert mean[0] == pytest.approx(want_mean[0])
        assert score[0] == pytest.approx(want_score[0])


def test_a_state_saved_before_squared_rewards_were_kept_still_loads():
    learner = _learner(local_noise=True)
    data = orjson.loads(learner.to_bytes())
    for arm in data["arms"]:
        arm[2] = [row[:7] for row in arm[2]]  # the seven columns of the old format
    fresh = OutcomeLearner(LearnerConfig(), seed=1)
    fresh.load_bytes(orjson.dumps(data))
    mean_old, _, score_old = fresh.scores("inference", 0.9, ["svc"])
    mean_new, _, _ = learner.scores("inference", 0.9, ["svc"])
    assert mean_old[0] == pytest.approx(mean_new[0])
    # Its noise is bounded from above (r^2 <= r), so it is no more certain than before.
    assert score_old[0] - mean_old[0] >= 0.9 * (_sd(learner, 0.9) * learner.config.ucb)
