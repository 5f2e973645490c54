"""adaptive: the learned choice of service, with redundancy for anomalous requests; the
Decision always names the concrete strategy and why."""

from routing.core.engine import RoutingEngine
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view


def test_an_ordinary_request_gets_the_learned_top_1():
    decision = RoutingEngine().route(RouteRequest(key="k"), uniform_fleet(3), view(3), "adaptive")
    assert decision.strategy == "switch_transformer"
    assert decision.requested_strategy == "adaptive"
    assert len(decision.selected) == 1
    assert decision.reason.startswith("adaptive chose switch_transformer (learned)")


def test_an_anomalous_request_gets_two_services_for_redundancy():
    request = RouteRequest(anomaly_score=0.9)
    decision = RoutingEngine().route(request, uniform_fleet(3), view(3), "adaptive", top_k=1)
    assert decision.strategy == "top_k"
    assert len(decision.selected) == 2
    assert "anomalous request" in decision.reason


def test_a_batch_names_the_same_strategies_as_single_routes():
    engine = RoutingEngine()
    batch = [RouteRequest(anomaly_score=0.9), RouteRequest(), RouteRequest(anomaly_score=0.1)]
    decisions = engine.route_batch(batch, uniform_fleet(4), view(4), "adaptive", top_k=1)
    assert [d.strategy for d in decisions] == ["top_k", "switch_transformer", "switch_transformer"]
    assert [len(d.selected) for d in decisions] == [2, 1, 1]
    assert all(d.reason.startswith("adaptive chose") for d in decisions)
