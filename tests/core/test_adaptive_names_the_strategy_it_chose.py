"""adaptive: rules when there is no confident policy, a trained policy otherwise; the Decision
always names the concrete strategy and why."""

import random

import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.policy import (
    PolicyExample,
    StrategyPolicy,
    policy_from_bytes,
    policy_to_bytes,
    train_policy,
)
from routing.core.types import RouteRequest
from tests.core.fleets import requests, uniform_fleet, view


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (RouteRequest(anomaly_score=0.9, key="k"), "tda_aware"),
        (RouteRequest(key="user-1"), "consistent_hash"),
        (RouteRequest(capabilities=("gpu",)), "semantic"),
        (RouteRequest(), "power_of_two"),
    ],
)
def test_without_a_policy_the_rules_pick_and_say_so(request_, expected):
    from routing.core.types import FleetSnapshot
    from tests.core.fleets import service

    snapshot = FleetSnapshot.build([service("a", capabilities=("gpu",)), service("b")])
    decision = RoutingEngine().route(request_, snapshot, view(2), "adaptive")
    assert decision.strategy == expected
    assert decision.requested_strategy == "adaptive"
    assert decision.reason.startswith(f"adaptive chose {expected} (rules:")


def test_a_trained_gate_makes_the_rules_prefer_the_switch():
    engine = RoutingEngine()
    engine.set_gate(engine.gate)
    decision = engine.route(RouteRequest(), uniform_fleet(3), view(3), "adaptive")
    assert decision.strategy == "switch_transformer"


def policy_history(n: int, seed: int = 0) -> list[PolicyExample]:
    """Requests of type 'etl' do well on semantic, everything else on power_of_two."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        request = RouteRequest(request_type=rng.choice(["etl", "inference", "search"]))
        strategy = rng.choice(["semantic", "power_of_two", "top_k"])
        good = "semantic" if request.request_type == "etl" else "power_of_two"
        ok = rng.random() < (0.95 if strategy == good else 0.4)
        out.append(PolicyExample(request, strategy, ok, rng.gauss(20 if ok else 80, 5)))
    return out


def test_a_trained_policy_picks_the_strategy_that_did_best_for_the_context():
    policy = StrategyPolicy()
    metrics = train_policy(policy, policy_history(3000), epochs=15)
    assert metrics["loss_final"] < metrics["loss_initial"]

    engine = RoutingEngine()
    engine.load_policy(policy_to_bytes(policy), version=7)
    assert engine.policy_version == 7
    snapshot = uniform_fleet(4)
    etl = engine.route(RouteRequest(request_type="etl"), snapshot, view(4), "adaptive")
    other = engine.route(RouteRequest(request_type="search"), snapshot, view(4), "adaptive")
    assert (etl.strategy, other.strategy) == ("semantic", "power_of_two")
    assert "policy p=" in etl.reason

    batch = engine.route_batch(
        [RouteRequest(request_type=t) for t in ("etl", "search") * 10],
        snapshot,
        view(4),
        "adaptive",
    )
    assert [d.strategy for d in batch[:2]] == ["semantic", "power_of_two"]


def test_an_unsure_policy_falls_back_to_the_rules():
    engine = RoutingEngine(EngineConfig(policy_confidence_threshold=0.99), policy=StrategyPolicy())
    decision = engine.route(RouteRequest(key="k"), uniform_fleet(3), view(3), "adaptive")
    assert decision.strategy == "consistent_hash"
    assert "policy unsure" in decision.reason


def test_a_reloaded_policy_gives_identical_choices():
    policy = StrategyPolicy()
    train_policy(policy, policy_history(300), epochs=2)
    reloaded = policy_from_bytes(policy_to_bytes(policy))
    engines = [
        RoutingEngine(EngineConfig(policy_confidence_threshold=0.0), policy=p)
        for p in (policy, reloaded)
    ]
    snapshot = uniform_fleet(4)
    picks = [
        [d.strategy for d in e.route_batch(requests(100), snapshot, view(4), "adaptive")]
        for e in engines
    ]
    assert picks[0] == picks[1]
