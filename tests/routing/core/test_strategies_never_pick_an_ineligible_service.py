"""Whatever the fleet and live state, no strategy selects a service that cannot serve the
request (wrong type, missing capability) or is ineligible, batches never overfill one, and
nothing eligible always yields no_eligible_service (never an exception)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.fleet import TypeRule
from routing.core.strategies import STRATEGY_NAMES
from routing.core.types import FleetSnapshot, Health, LiveView, RouteRequest, ServiceStatus
from tests.routing.core.fleets import PROPERTY_SETTINGS, service

CAPS = ("gpu", "nlp", "vision")

service_specs = st.lists(
    st.tuples(
        st.sampled_from(list(ServiceStatus)),
        st.sampled_from(list(Health)),
        st.frozensets(st.sampled_from(CAPS)),
        st.integers(0, 5),  # max capacity
        st.integers(0, 6),  # in flight
        st.booleans(),  # breaker allows
        st.sampled_from([0.0, 0.0, 0.5, 0.95]),  # anomaly
        st.sampled_from(["inference", "analysis"]),
    ),
    max_size=10,
)
route_requests = st.builds(
    RouteRequest,
    request_type=st.sampled_from(["", "inference", "analysis", "etl"]),
    complexity=st.floats(0.0, 1.0),
    capabilities=st.lists(st.sampled_from(CAPS + ("unknown",)), max_size=2, unique=True).map(tuple),
    key=st.one_of(st.none(), st.sampled_from(["a", "b", "user-1"])),
    anomaly_score=st.one_of(st.none(), st.sampled_from([0.1, 0.9])),
    # (a named tuple: builds() would draw every field; the rest as the API validates them)
    priority=st.floats(0.0, 1.0),
    payload_size=st.just(0),
    tokens=st.just(()),
    payload=st.none(),
)

ENGINES = {
    "unknown-any": RoutingEngine(EngineConfig(p2c_seed=1)),
    "unknown-reject": RoutingEngine(EngineConfig(p2c_seed=1, type_rule=TypeRule(unknown="reject"))),
    "mapped": RoutingEngine(
        EngineConfig(
            p2c_seed=1, type_rule=TypeRule.from_mapping({"inference": ["inference", "analysis"]})
        )
    ),
}


def build(specs):
    snapshot = FleetSnapshot.build(
        [
            service(f"s{i}", stype, tuple(caps), cap, status=status, health=health)
            for i, (status, health, caps, cap, _, _, _, stype) in enumerate(specs)
        ]
    )
    by_id = {f"s{i}": spec for i, spec in enumerate(specs)}
    ordered = [by_id[s.service_id] for s in snapshot.services]
    live = LiveView(
        in_flight=np.array([s[4] for s in ordered], dtype=float),
        ewma_latency_ms=np.array([10.0 + i for i in range(len(ordered))]),
        error_rate=np.zeros(len(ordered)),
        anomaly=np.array([s[6] for s in ordered], dtype=float),
        breaker_allows=np.array([s[5] for s in ordered], dtype=bool),
    )
    return snapshot, live, ordered


def serves(engine_name, request_type, service_type, fleet_types) -> bool:
    """The type rule, written out independently of TypeRule."""
    if not request_type:
        return True
    if engine_name == "mapped" and request_type == "inference":
        return service_type in ("inference", "analysis")
    if request_type in fleet_types:
        return service_type == request_type
    return engine_name != "unknown-reject"


def eligible_ids(snapshot, ordered, request, engine_name="unknown-any") -> set[str]:
    """Able to serve, active, not unhealthy, below capacity, breaker closed; or, when the
    breakers alone leave none of those (panic routing), the same without the breaker."""
    fleet_types = {s.service_type for s in snapshot.services}
    able = {
        spec.service_id: allows
        for spec, (status, health, caps, cap, in_flight, allows, _, _) in zip(
            snapshot.services, ordered, strict=True
        )
        if serves(engine_name, request.request_type, spec.service_type, fleet_types)
        and status == ServiceStatus.ACTIVE
        and health != Health.UNHEALTHY
        and in_flight < cap
        and set(request.capabilities) <= caps
    }
    closed = {sid for sid, allows in able.items() if allows}
    return closed or set(able)


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
@PROPERTY_SETTINGS
@given(specs=service_specs, batch=st.lists(route_requests, min_size=1, max_size=12))
def test_no_strategy_selects_an_ineligible_service(engine_name, strategy, specs, batch):
    engine = ENGINES[engine_name]
    snapshot, live, ordered = build(specs)

    for request in batch:
        allowed = eligible_ids(snapshot, ordered, request, engine_name)
        decision = engine.route(request, snapshot, live, strategy, top_k=2)
        assert decision.no_eligible_service == (not allowed)
        assert set(decision.selected) <= allowed
        if decision.selected:
            assert set(decision.candidates) == allowed
            assert decision.propensity is None or 0.0 < decision.propensity <= 1.0
        assert len(set(decision.selected)) == len(decision.selected)
        assert decision.requested_strategy == strategy
        assert (
            decision.strategy in STRATEGY_NAMES
            and decision.strategy != "adaptive"
            or (decision.no_eligible_service)
        )
        assert decision.reason

    decisions = engine.route_batch(batch, snapshot, live, strategy, top_k=2)
    assert len(decisions) == len(batch)
    assigned = {s.service_id: 0 for s in snapshot.services}
    for request, decision in zip(batch, decisions, strict=True):
        assert set(decision.selected) <= eligible_ids(snapshot, ordered, request, engine_name)
        for service_id in decision.selected:
            assigned[service_id] += 1
    for spec, (_, _, _, cap, in_flight, _, _, _) in zip(snapshot.services, ordered, strict=True):
        if assigned[spec.service_id]:
            assert in_flight + assigned[spec.service_id] <= cap


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_an_empty_fleet_gives_no_eligible_service(strategy):
    engine = RoutingEngine()
    empty = FleetSnapshot.build([])
    decision = engine.route(RouteRequest(key="k"), empty, LiveView.idle(0), strategy)
    assert decision.no_eligible_service
    assert decision.selected == ()
    assert "empty" in decision.reason
    batch = engine.route_batch([RouteRequest()] * 3, empty, LiveView.idle(0), strategy)
    assert all(d.no_eligible_service for d in batch)
