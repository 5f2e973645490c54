"""Panic routing: when the circuit breakers alone shut out every service able to serve a
request, it is routed among them anyway (as Envoy does under its healthy-panic threshold),
and the reason says so; with a closed-breaker alternative the open one stays out."""

import pytest

from routing.core.engine import PANIC_NOTE, EngineConfig, RoutingEngine
from routing.core.strategies import STRATEGY_NAMES
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service, view

GRAPH = RouteRequest(request_type="analysis", complexity=0.4, capabilities=("graph",))


def fleet():
    return FleetSnapshot.build(
        [
            service("graph-miner", "analysis", ("analysis", "graph")),
            service("olap", "analysis", ("analysis", "sql")),
            service("graph-db", "storage", ("graph",)),
        ]
    )


def allows(snapshot, **closed):
    return view(len(snapshot), allows=[closed.get(s.service_id, True) for s in snapshot.services])


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_the_only_capable_service_is_used_while_its_breaker_is_open(strategy):
    snapshot = fleet()
    live = allows(snapshot, **{"graph-miner": False})
    engine = RoutingEngine(EngineConfig(p2c_seed=0))
    decision = engine.route(GRAPH, snapshot, live, strategy)
    assert decision.selected == ("graph-miner",)
    assert PANIC_NOTE in decision.reason
    (batched,) = engine.route_batch([GRAPH], snapshot, live, strategy)
    assert batched.selected == ("graph-miner",)
    assert PANIC_NOTE in batched.reason


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_an_open_breaker_stays_out_while_a_closed_one_can_serve(strategy):
    snapshot = fleet()
    live = allows(snapshot, olap=False)
    engine = RoutingEngine(EngineConfig(p2c_seed=0))
    request = RouteRequest(request_type="analysis", complexity=0.4, capabilities=("analysis",))
    for _ in range(20):
        decision = engine.route(request, snapshot, live, strategy, top_k=1)
        assert decision.selected == ("graph-miner",)
        assert PANIC_NOTE not in decision.reason


def test_without_panic_routing_the_request_gets_no_eligible_service():
    snapshot = fleet()
    live = allows(snapshot, **{"graph-miner": False})
    engine = RoutingEngine(EngineConfig(p2c_seed=0, panic_when_all_breakers_open=False))
    decision = engine.route(GRAPH, snapshot, live, "semantic")
    assert decision.no_eligible_service
    assert "breaker open" in decision.reason
    (batched,) = engine.route_batch([GRAPH], snapshot, live, "semantic")
    assert batched.no_eligible_service


def test_panic_never_reaches_past_capacity():
    snapshot = fleet()
    full = [100 if s.service_id == "graph-miner" else 0 for s in snapshot.services]
    closed = [s.service_id != "graph-miner" for s in snapshot.services]
    live = view(len(snapshot), in_flight=full, allows=closed)
    decision = RoutingEngine(EngineConfig(p2c_seed=0)).route(GRAPH, snapshot, live, "semantic")
    assert decision.no_eligible_service
