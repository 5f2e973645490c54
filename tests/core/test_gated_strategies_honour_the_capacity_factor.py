"""switch_transformer honours the capacity factor and spills; top_k renormalises over k."""

import math

import pytest
import torch

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.gate import Gate, service_bucket
from routing.core.types import RouteRequest
from tests.core.fleets import uniform_fleet, view


@pytest.fixture
def engine_favouring_svc_0() -> RoutingEngine:
    gate = Gate()
    with torch.no_grad():
        gate.id_bias[service_bucket("svc-000", gate.config.id_buckets)] = 5.0
        gate.id_bias[service_bucket("svc-001", gate.config.id_buckets)] = 2.0
    engine = RoutingEngine(EngineConfig(capacity_factor=1.25))
    engine.set_gate(gate)
    return engine


def test_switch_takes_the_gates_favourite_when_it_has_room(engine_favouring_svc_0):
    snapshot = uniform_fleet(4)
    decision = engine_favouring_svc_0.route(RouteRequest(), snapshot, view(4), "switch_transformer")
    assert decision.selected == ("svc-000",)
    assert decision.strategy == "switch_transformer"
    assert 0 < decision.confidence <= 1


def test_switch_spills_to_the_next_choice_past_the_capacity_factor(engine_favouring_svc_0):
    snapshot = uniform_fleet(4)
    # 10 in flight, fair share of 11 is 2.75, bound ceil(1.25 * 2.75) = 4: svc-000 is full.
    live = view(4, in_flight=[4, 2, 2, 2])
    decision = engine_favouring_svc_0.route(RouteRequest(), snapshot, live, "switch_transformer")
    assert decision.selected == ("svc-001",)
    assert "spilled" in decision.reason


def test_a_switch_batch_spreads_by_the_capacity_factor(engine_favouring_svc_0):
    snapshot = uniform_fleet(4)
    decisions = engine_favouring_svc_0.route_batch(
        [RouteRequest()] * 40, snapshot, view(4), "switch_transformer"
    )
    top = sum(d.selected == ("svc-000",) for d in decisions)
    assert top == math.ceil(1.25 * 40 / 4)


def test_top_k_picks_k_distinct_services_with_weights_summing_to_one(engine_favouring_svc_0):
    snapshot = uniform_fleet(5)
    decision = engine_favouring_svc_0.route(RouteRequest(), snapshot, view(5), "top_k", top_k=3)
    assert len(set(decision.selected)) == 3
    assert decision.selected[:2] == ("svc-000", "svc-001")
    assert abs(sum(decision.scores.values()) - 1.0) < 1e-6
    batch = engine_favouring_svc_0.route_batch([RouteRequest()] * 5, snapshot, view(5), "top_k", 3)
    assert all(abs(sum(d.scores.values()) - 1.0) < 1e-6 for d in batch)


def test_top_k_defaults_to_the_configured_k_and_is_capped():
    snapshot = uniform_fleet(12)
    engine = RoutingEngine(EngineConfig(default_top_k=2, max_top_k=4))
    assert len(engine.route(RouteRequest(), snapshot, view(12), "top_k").selected) == 2
    assert len(engine.route(RouteRequest(), snapshot, view(12), "top_k", top_k=50).selected) == 4


def test_an_untrained_gate_prefers_a_capability_match_and_headroom():
    snapshot = uniform_fleet(4)
    engine = RoutingEngine()
    busy = view(4, in_flight=[80, 0, 80, 80])
    decision = engine.route(RouteRequest(), snapshot, busy, "switch_transformer")
    assert decision.selected == ("svc-001",)


def test_swapping_the_gate_takes_effect_on_the_next_decision_for_a_cached_snapshot():
    snapshot = uniform_fleet(4)
    engine = RoutingEngine()
    engine.route(RouteRequest(), snapshot, view(4), "switch_transformer")  # caches a scorer
    gate = Gate()
    with torch.no_grad():
        gate.id_bias[service_bucket("svc-003", gate.config.id_buckets)] = 5.0
    engine.set_gate(gate, version=3)
    assert engine.route(RouteRequest(), snapshot, view(4), "switch_transformer").selected == (
        "svc-003",
    )
    with torch.no_grad():  # weights changed in place: set_gate again to publish them
        gate.id_bias[service_bucket("svc-002", gate.config.id_buckets)] = 9.0
    engine.set_gate(gate)
    assert engine.gate_version == 3
    assert engine.route(RouteRequest(), snapshot, view(4), "switch_transformer").selected == (
        "svc-002",
    )
