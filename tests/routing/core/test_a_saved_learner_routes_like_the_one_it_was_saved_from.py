"""A learner saved to bytes (what a retrained version stores) and loaded by another worker
scores every candidate exactly as the original: estimates, evidence and the optimism that
depends on each service's learned reward noise."""

import random

import numpy as np

from routing.core.learning import OutcomeLearner


def trained() -> OutcomeLearner:
    learner = OutcomeLearner(seed=0)
    rng = random.Random(1)
    for _ in range(600):
        c = rng.random()
        learner.observe("steady", "t", c, 0.9)  # no noise at all
        learner.observe("noisy", "t", c, float(rng.random() < 0.6))
    return learner


def test_scores_survive_a_round_trip_through_bytes():
    original = trained()
    copy = OutcomeLearner()
    copy.load_bytes(original.to_bytes())
    for c in np.linspace(0, 1, 11):
        for got, want in zip(
            copy.scores("t", c, ["steady", "noisy", "unseen"]),
            original.scores("t", c, ["steady", "noisy", "unseen"]),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, atol=1e-4)  # saved to 6 decimals


def test_a_noisy_service_keeps_its_larger_optimism_after_loading():
    copy = OutcomeLearner()
    copy.load_bytes(trained().to_bytes())
    mean, _, score = copy.scores("t", 0.5, ["steady", "noisy"])
    bonus = score - mean
    assert bonus[1] > 2 * bonus[0]


def test_how_long_a_service_went_unobserved_survives_a_round_trip():
    """forced_recheck counts outcomes of the type since a service was last observed: a
    loaded learner goes on counting from there, neither forgetting that a service has been
    left out for a while nor taking a long-unseen one for fresh."""
    original = trained()
    recheck = original.config.forced_recheck
    for _ in range(recheck - 100):
        original.observe("steady", "t", 0.5, 0.9)
    original.observe("left-out", "t", 0.5, 0.0)
    for _ in range(150):  # "noisy" now unobserved for recheck + 51 outcomes, "left-out" 150
        original.observe("steady", "t", 0.5, 0.9)
    ids = ["steady", "left-out", "noisy"]
    assert original.stale("t", ids).tolist() == [False, False, True]
    copy = OutcomeLearner()
    copy.load_bytes(original.to_bytes())
    assert copy.stale("t", ids).tolist() == [False, False, True]
    for _ in range(recheck - 140):  # "left-out": ten past forced_recheck
        copy.observe("steady", "t", 0.5, 0.9)
    assert copy.stale("t", ids).tolist() == [False, True, True]
