"""switch_transformer and top_k: the trained gate is the prior, outcomes decide, the capacity
factor spills only to an equally good candidate; top_k renormalises over k."""

import pytest
import torch

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.gate import Gate, service_bucket
from routing.core.learning import LearnerConfig
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view

GREEDY = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)  # no exploration


def gate_favouring(*favourites: str) -> Gate:
    gate = Gate()
    with torch.no_grad():
        for bias, service_id in zip((5.0, 2.0, 1.0), favourites, strict=False):
            gate.id_bias[service_bucket(service_id, gate.config.id_buckets)] = bias
    return gate


@pytest.fixture
def engine() -> RoutingEngine:
    engine = RoutingEngine(EngineConfig(capacity_factor=1.25, learner_config=GREEDY))
    engine.set_gate(gate_favouring("svc-000", "svc-001"))
    return engine


def teach(engine, service_id, reward, n=30, request_type=""):
    for _ in range(n):
        engine.learner.observe(service_id, request_type, 0.5, reward)


def test_without_outcomes_switch_takes_the_trained_gates_favourite(engine):
    decision = engine.route(RouteRequest(), uniform_fleet(4), view(4), "switch_transformer")
    assert decision.selected == ("svc-000",)
    assert decision.strategy == "switch_transformer"
    assert decision.propensity == 1.0  # epsilon 0: deterministic


def test_outcomes_beat_the_gates_prior(engine):
    teach(engine, "svc-000", 0.0)
    teach(engine, "svc-001", 0.9)
    decision = engine.route(RouteRequest(), uniform_fleet(4), view(4), "switch_transformer")
    assert decision.selected == ("svc-001",)
    assert "est. reward 0.9" in decision.reason


def test_switch_spills_past_the_capacity_factor_only_to_an_equally_good_service(engine):
    snapshot = uniform_fleet(4, capacity=8)
    teach(engine, "svc-000", 0.93)
    teach(engine, "svc-001", 0.90)
    teach(engine, "svc-002", 0.50)
    teach(engine, "svc-003", 0.50)
    # 10 in flight, fair share of 11 is 2.75, bound ceil(1.25 * 2.75) = 4: svc-000 is full,
    # and loaded (4 of its 8 slots: spill_floor 0.5). Its load term alone (0.025) leaves it
    # ahead; the spill margin (0.03) does not.
    live = view(4, in_flight=[4, 2, 2, 2])
    decision = engine.route(RouteRequest(), snapshot, live, "switch_transformer")
    assert decision.selected == ("svc-001",)
    assert "spilled" in decision.reason

    teach(engine, "svc-001", 0.2)  # now clearly worse: no spill
    decision = engine.route(RouteRequest(), snapshot, live, "switch_transformer")
    assert decision.selected == ("svc-000",)


def test_a_service_far_below_its_capacity_does_not_spill(engine):
    # The same shares of the load, but 4 of 100 slots: not loaded, so the best one keeps the
    # request (16 concurrent clients made 1,000-slot services spill at 2 in flight).
    snapshot = uniform_fleet(4, capacity=100)
    teach(engine, "svc-000", 0.92)
    teach(engine, "svc-001", 0.90)
    live = view(4, in_flight=[4, 2, 2, 2])
    decision = engine.route(RouteRequest(), snapshot, live, "switch_transformer")
    assert decision.selected == ("svc-000",)
    assert "spilled" not in decision.reason


def test_a_batch_never_overfills_and_prefers_the_best_service(engine):
    snapshot = uniform_fleet(4, capacity=10)
    for service_id in ("svc-000", "svc-001", "svc-003"):
        teach(engine, service_id, 0.5)
    teach(engine, "svc-002", 1.0)
    decisions = engine.route_batch([RouteRequest()] * 25, snapshot, view(4), "switch_transformer")
    firsts = [d.selected[0] for d in decisions]
    assert firsts.count("svc-002") == 10  # its capacity, then the next best
    assert firsts[:10] == ["svc-002"] * 10


def test_top_k_picks_k_distinct_services_with_weights_summing_to_one(engine):
    snapshot = uniform_fleet(5)
    decision = engine.route(RouteRequest(), snapshot, view(5), "top_k", top_k=3)
    assert len(set(decision.selected)) == 3
    assert decision.selected[:2] == ("svc-000", "svc-001")
    assert abs(sum(decision.scores.values()) - 1.0) < 1e-6
    batch = engine.route_batch([RouteRequest()] * 5, snapshot, view(5), "top_k", 3)
    assert all(abs(sum(d.scores.values()) - 1.0) < 1e-6 for d in batch)
    assert all(d.selected[:2] == ("svc-000", "svc-001") for d in batch)


def test_top_k_defaults_to_the_configured_k_and_is_capped():
    snapshot = uniform_fleet(12)
    engine = RoutingEngine(EngineConfig(default_top_k=2, max_top_k=4))
    assert len(engine.route(RouteRequest(), snapshot, view(12), "top_k").selected) == 2
    assert len(engine.route(RouteRequest(), snapshot, view(12), "top_k", top_k=50).selected) == 4


def test_among_equal_estimates_the_idle_service_wins():
    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    busy = view(4, in_flight=[80, 0, 80, 80])
    decision = engine.route(RouteRequest(), uniform_fleet(4), busy, "switch_transformer")
    assert decision.selected == ("svc-001",)


def test_swapping_the_gate_takes_effect_on_the_next_decision_for_a_cached_snapshot():
    snapshot = uniform_fleet(4)
    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    engine.set_gate(gate_favouring("svc-000"))
    assert engine.route(RouteRequest(), snapshot, view(4), "switch_transformer").selected == (
        "svc-000",
    )
    engine.set_gate(gate_favouring("svc-003"), version=3)
    assert engine.gate_version == 3
    assert engine.route(RouteRequest(), snapshot, view(4), "switch_transformer").selected == (
        "svc-003",
    )
