"""Decisions carry plain str / float / bool values, ready for any JSON encoder."""

import pytest

from routing.core.engine import RoutingEngine
from routing.core.strategies import STRATEGY_NAMES
from tests.routing.core.fleets import random_fleet, requests, view


def assert_plain(decision) -> None:
    assert type(decision.selected) is tuple
    assert all(type(s) is str for s in decision.selected)
    assert all(type(k) is str and type(v) is float for k, v in decision.scores.items())
    assert type(decision.confidence) is float
    assert type(decision.latency_ms) is float
    assert type(decision.reason) is str and type(decision.strategy) is str
    assert type(decision.no_eligible_service) is bool


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_single_and_batch_decisions_hold_plain_python_values(strategy):
    snapshot = random_fleet(12, seed=2)
    live = view(12, in_flight=[1] * 12, latency=[10.0] * 12, anomaly=[0.1] * 12)
    engine = RoutingEngine()
    batch = requests(60, seed=3, with_capabilities=True)
    for decision in [engine.route(r, snapshot, live, strategy) for r in batch[:20]]:
        assert_plain(decision)
    for decision in engine.route_batch(batch, snapshot, live, strategy):
        assert_plain(decision)
