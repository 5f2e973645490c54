"""A batch no outcome has been reported for yet is spread over the untried candidates (they
take turns, round robin when alike), as a client routing one request at a time would spread
it as its outcomes come back, instead of going whole to the first listed. What is believed does
not change: a service with a better prior (the gate's) still takes them all, and a batch's
first row is decided as a single route is. Each row's logged propensity stays its true
choice probability."""

from collections import Counter

import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.learning import LearnerConfig
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view

GREEDY = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)  # no exploration
REQUEST = RouteRequest(complexity=0.5)


def firsts(decisions) -> list[str]:
    return [d.selected[0] for d in decisions]


def test_a_cold_start_batch_takes_turns():
    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    snapshot = uniform_fleet(4, capacity=1000)

    batch = engine.route_batch([REQUEST] * 8, snapshot, view(4), "switch_transformer")
    single = engine.route(REQUEST, snapshot, view(4), "switch_transformer")

    ids = list(snapshot.service_ids)
    assert firsts(batch) == ids + ids
    assert single.selected[0] == batch[0].selected[0]
    assert all(d.propensity == 1.0 for d in batch)  # no exploration: each row is determined


def test_the_untried_take_turns_and_the_tried_keep_their_estimate():
    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    snapshot = uniform_fleet(4, capacity=1000)
    for _ in range(30):
        engine.learner.observe("svc-000", "", 0.5, 0.5)

    batch = engine.route_batch([REQUEST] * 6, snapshot, view(4), "switch_transformer")

    assert firsts(batch) == ["svc-001", "svc-002", "svc-003"] * 2


def test_a_batch_with_every_candidate_tried_is_decided_as_before():
    # the best known one takes the batch (up to its capacity): nothing to take turns over
    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    snapshot = uniform_fleet(3, capacity=1000)
    for sid, reward in (("svc-000", 0.5), ("svc-001", 0.9), ("svc-002", 0.6)):
        for _ in range(30):
            engine.learner.observe(sid, "", 0.5, reward)

    batch = engine.route_batch([REQUEST] * 10, snapshot, view(3), "switch_transformer")

    assert firsts(batch) == ["svc-001"] * 10


def test_each_rows_logged_propensity_is_its_choice_frequency():
    # Exploration on (fixed epsilon 0.3, a third of it uniform): over many cold batches, each
    # row's choices occur as often as the probabilities it logged.
    config = LearnerConfig(epsilon=0.3, epsilon_min=0.3, epsilon_uniform=0.1, forced_share=0.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=3, learner_config=config))
    snapshot = uniform_fleet(4, capacity=100_000)
    rows, runs = 3, 3000
    chosen = [Counter() for _ in range(rows)]
    logged: list[dict[str, float]] = [{} for _ in range(rows)]
    for _ in range(runs):
        batch = engine.route_batch([REQUEST] * rows, snapshot, view(4), "switch_transformer")
        for r, decision in enumerate(batch):
            sid = decision.selected[0]
            chosen[r][sid] += 1
            assert logged[r].setdefault(sid, decision.propensity) == decision.propensity

    for r in range(rows):
        # the row's greedy pick is the r-th untried service, taken with the greedy share
        greedy = snapshot.service_ids[r]
        assert chosen[r].most_common(1)[0][0] == greedy
        # as for a single route: the greedy share, and exploration's directed share still to
        # the other untried ones (each may be better), the uniform share to all
        assert logged[r][greedy] == pytest.approx(0.7 + 0.1 / 4)
        for sid in set(snapshot.service_ids) - {greedy}:
            assert logged[r][sid] == pytest.approx(0.1 / 4 + 0.2 / 3), (r, sid)
        for sid, p in logged[r].items():
            assert chosen[r][sid] / runs == pytest.approx(p, abs=0.03), (r, sid)
        assert sum(logged[r].values()) == pytest.approx(1.0)
