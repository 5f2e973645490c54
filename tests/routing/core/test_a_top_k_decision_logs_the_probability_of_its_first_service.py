"""A top-k decision selects several services, but its logged propensity is the probability of
the first (primary) one, the one off-policy evaluation replays: over many identical top-k
decisions, single and batch, each primary's frequency matches its logged propensity, with
directed exploration and forced sampling in play; and so does a row of a batch decided after
its greedy service filled up."""

from collections import Counter

import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.learning import LearnerConfig
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view


def taught_engine() -> RoutingEngine:
    """svc-000 best, svc-001 plausible (0.01 behind, as noisy), svc-002 clearly worse,
    svc-003 under-sampled (one outcome): directed exploration, the uniform share and forced
    sampling all fire."""
    config = LearnerConfig(epsilon=0.3, epsilon_min=0.3, epsilon_uniform=0.1)
    engine = RoutingEngine(EngineConfig(p2c_seed=11, learner_config=config))
    for i in range(40):
        engine.learner.observe("svc-000", "", 0.5, (1.0, 0.8)[i % 2])
        engine.learner.observe("svc-001", "", 0.5, (0.99, 0.79)[i % 2])
        engine.learner.observe("svc-002", "", 0.5, 0.1)
    engine.learner.observe("svc-003", "", 0.5, 0.9)
    return engine


@pytest.mark.parametrize("path", ["single", "batch"])
def test_each_primarys_frequency_is_its_logged_propensity(path):
    engine = taught_engine()
    snapshot = uniform_fleet(4, capacity=1_000_000)
    request = RouteRequest(complexity=0.5)
    n = 8000
    if path == "single":
        decisions = [engine.route(request, snapshot, view(4), "top_k", top_k=2) for _ in range(n)]
    else:
        decisions = engine.route_batch([request] * n, snapshot, view(4), "top_k", top_k=2)
    assert all(len(d.selected) == 2 for d in decisions)
    counts = Counter(d.selected[0] for d in decisions)
    logged: dict[str, set] = {}
    for d in decisions:
        logged.setdefault(d.selected[0], set()).add(round(d.propensity, 9))
    assert len(counts) == 4, counts  # every mechanism fired
    for sid, propensities in logged.items():
        assert len(propensities) == 1, (sid, propensities)
        assert counts[sid] / n == pytest.approx(propensities.pop(), abs=0.015), (sid, counts)
    # what off-policy evaluation computes for the learner's policy is what was logged
    mean, evidence, score = engine.learner.scores("", 0.5, snapshot.service_ids)
    stale = engine.learner.stale("", snapshot.service_ids)
    expected = engine.learner.probabilities(
        score, float(evidence.sum()), evidence, score - mean, stale
    )
    for i, sid in enumerate(snapshot.service_ids):
        p = next(d.propensity for d in decisions if d.selected[0] == sid)
        assert p == pytest.approx(expected[i], abs=1e-9), sid


def test_a_batch_that_fills_its_greedy_service_logs_the_probability_of_what_it_did():
    config = LearnerConfig(epsilon=0.3, epsilon_min=0.3, epsilon_uniform=0.3, forced_share=0.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=5, learner_config=config))
    snapshot = uniform_fleet(2, capacity=100)
    for _ in range(20):
        engine.learner.observe("svc-000", "", 0.5, 0.9)
        engine.learner.observe("svc-001", "", 0.5, 0.2)
    # Row 140 of a 150-row batch: svc-000's 100 slots are gone by then, every time.
    last_rows = Counter()
    for _ in range(50):
        batch = engine.route_batch(
            [RouteRequest(complexity=0.5)] * 150, snapshot, view(2, [0, 0]), "switch_transformer"
        )
        d = batch[140]
        last_rows[(d.selected[0], round(d.propensity, 6))] += 1
    ((service, propensity),) = last_rows  # always the same service and propensity
    assert service == "svc-001"
    assert propensity == pytest.approx(1.0)  # logged: 0.15


def test_after_a_fill_each_services_frequency_is_its_logged_propensity():
    """Every kind of draw in play. The greedy service (svc-003, optimistic on one outcome) and
    then the next best (svc-000) fill their 50 slots before row 130 of each 170-row batch;
    after that, a row's pick is the best one with room (svc-001) unless its draw targets
    another with room (svc-002), until svc-001 fills too. Over those rows, each service's
    frequency is its logged propensity (before, svc-001 logged only its exploration share,
    0.125, and was chosen nearly every time)."""
    engine = taught_engine()
    snapshot = uniform_fleet(4, capacity=50)
    fresh = view(4, [0, 0, 0, 0])
    counts: Counter = Counter()
    logged: dict[str, set] = {}
    n = 0
    for _ in range(120):
        batch = engine.route_batch(
            [RouteRequest(complexity=0.5)] * 170, snapshot, fresh, "switch_transformer"
        )
        taken = Counter(d.selected[0] for d in batch[:130])
        for d in batch[130:]:
            if taken["svc-001"] >= 50:
                break  # svc-001 full too: from here svc-002 is the only choice
            counts[d.selected[0]] += 1
            taken[d.selected[0]] += 1
            logged.setdefault(d.selected[0], set()).add(round(d.propensity, 9))
            n += 1
    assert n > 2000 and set(counts) == {"svc-001", "svc-002"}, (n, counts)
    for sid, propensities in logged.items():
        assert len(propensities) == 1, (sid, propensities)
        assert counts[sid] / n == pytest.approx(propensities.pop(), abs=0.015), (sid, counts)
