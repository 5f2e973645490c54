"""Anomaly scores flag services far slower or more error-prone than the rest of the fleet."""

import numpy as np

from routing.core.anomaly import outlier_scores


def test_a_slow_service_and_an_erroring_one_stand_out_and_the_rest_score_zero():
    latency = np.array([20, 21, 19, 22, 20, 80, 20, 21.0])
    errors = np.array([0.01, 0.0, 0.02, 0.01, 0.0, 0.01, 0.3, 0.0])
    scores = outlier_scores(latency, errors)
    assert scores[5] == 1.0 and scores[6] == 1.0
    assert np.all(scores[[0, 1, 2, 3, 4, 7]] == 0.0)


def test_a_tight_healthy_fleet_has_no_outliers():
    scores = outlier_scores(np.array([20, 21, 22, 20, 21.0]), np.zeros(5))
    assert np.all(scores == 0)


def test_unmeasured_services_and_tiny_fleets_are_not_flagged():
    assert np.all(outlier_scores(np.array([0, 0, 0, 50.0]), np.zeros(4)) == 0)
    assert np.all(outlier_scores(np.array([10, 500.0]), np.array([0.0, 1.0])) == 0)
