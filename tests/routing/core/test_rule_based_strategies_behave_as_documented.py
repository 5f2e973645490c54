"""semantic, tda_aware and consistent_hash behave as documented."""

import numpy as np

from routing.core.engine import RoutingEngine
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service, uniform_fleet, view


def test_semantic_prefers_the_specialist_then_the_less_loaded():
    snapshot = FleetSnapshot.build(
        [
            service("generalist", "custom", ("vision", "nlp", "gpu")),
            service("nlp-a", "nlp", ("nlp",)),
            service("nlp-b", "nlp", ("nlp",)),
        ]
    )
    engine = RoutingEngine()
    request = RouteRequest(request_type="nlp", capabilities=("nlp",))
    live = view(3, in_flight=[0, 5, 1])
    decision = engine.route(request, snapshot, live, "semantic")
    assert decision.selected == ("nlp-b",)
    assert "least utilised" in decision.reason
    assert decision.confidence > 0.5


def test_a_missing_capability_makes_a_service_ineligible_for_every_strategy():
    snapshot = FleetSnapshot.build([service("a", capabilities=("gpu",)), service("b")])
    engine = RoutingEngine()
    for strategy in ("power_of_two", "consistent_hash", "switch_transformer"):
        for _ in range(20):
            d = engine.route(RouteRequest(capabilities=("gpu",)), snapshot, view(2), strategy)
            assert d.selected == ("a",)


def test_no_eligible_reason_counts_the_causes():
    snapshot = FleetSnapshot.build(
        [service("a", capabilities=("gpu",), max_capacity=1), service("b"), service("c")]
    )
    decision = RoutingEngine().route(
        RouteRequest(capabilities=("gpu",)), snapshot, view(3, in_flight=[1, 0, 0]), "semantic"
    )
    assert decision.no_eligible_service
    assert "2 lack capability 'gpu'" in decision.reason
    assert "1 at capacity" in decision.reason


def test_tda_aware_avoids_anomalous_services_and_adds_redundancy_for_anomalous_requests():
    snapshot = uniform_fleet(4)
    live = view(4, anomaly=[0.95, 0.0, 0.3, 0.0], in_flight=[0, 10, 0, 20])
    engine = RoutingEngine()
    calm = engine.route(RouteRequest(anomaly_score=0.1), snapshot, live, "tda_aware")
    assert calm.selected == ("svc-001",)
    anxious = engine.route(RouteRequest(anomaly_score=0.9), snapshot, live, "tda_aware", top_k=3)
    assert len(anxious.selected) == 3 and "svc-000" not in anxious.selected
    assert "redundancy" in anxious.reason


def test_consistent_hash_keeps_a_key_on_one_service_until_it_hits_the_bound():
    snapshot = uniform_fleet(8)
    engine = RoutingEngine()
    first = engine.route(RouteRequest(key="user-7"), snapshot, view(8), "consistent_hash")
    again = engine.route(RouteRequest(key="user-7"), snapshot, view(8), "consistent_hash")
    assert first.selected == again.selected and first.confidence == 1.0
    hot = np.zeros(8)
    hot[snapshot.index[first.selected[0]]] = 5  # ceil(1.25 * 6 / 8) = 1: far over the bound
    moved = engine.route(
        RouteRequest(key="user-7"), snapshot, view(8, in_flight=hot), "consistent_hash"
    )
    assert moved.selected != first.selected
    assert "load bound" in moved.reason


def test_requests_without_a_key_hash_their_payload():
    snapshot = uniform_fleet(8)
    engine = RoutingEngine()
    a = engine.route(RouteRequest(payload={"x": 1, "y": 2}), snapshot, view(8), "consistent_hash")
    b = engine.route(RouteRequest(payload={"y": 2, "x": 1}), snapshot, view(8), "consistent_hash")
    assert a.selected == b.selected
    assert "payload" in a.reason


def test_an_unknown_strategy_name_is_a_value_error_listing_the_valid_ones():
    import pytest

    from routing.core.strategies import get_strategy

    with pytest.raises(ValueError, match="power_of_two"):
        get_strategy("round_robin")
    with pytest.raises(ValueError, match="switch_transformer"):
        RoutingEngine().route(RouteRequest(), uniform_fleet(2), view(2), "round_robin")
