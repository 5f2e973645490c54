"""Power-of-two choices keeps the busiest service far less busy than uniform random does."""

import random

import numpy as np

from routing.core.balancing import jain_index
from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view

N, REQUESTS = 32, 3200


def test_max_utilisation_is_clearly_below_uniform_randoms_one_by_one():
    snapshot = uniform_fleet(N, capacity=1000)
    engine = RoutingEngine(EngineConfig(p2c_seed=7))
    load = np.zeros(N)
    for _ in range(REQUESTS):
        decision = engine.route(RouteRequest(), snapshot, view(N, in_flight=load), "power_of_two")
        load[snapshot.index[decision.selected[0]]] += 1

    rng = random.Random(7)
    random_load = np.zeros(N)
    for _ in range(REQUESTS):
        random_load[rng.randrange(N)] += 1

    average = REQUESTS / N
    assert load.max() <= average * 1.1
    assert load.max() < random_load.max() - 0.1 * average
    assert jain_index(load) > jain_index(random_load)


def test_the_batch_path_balances_the_same_way():
    snapshot = uniform_fleet(N, capacity=1000)
    engine = RoutingEngine(EngineConfig(p2c_seed=3))
    decisions = engine.route_batch([RouteRequest()] * REQUESTS, snapshot, view(N), "power_of_two")
    counts = np.bincount([snapshot.index[d.selected[0]] for d in decisions], minlength=N)
    assert counts.max() <= REQUESTS / N * 1.1


def test_a_slower_service_gets_less_traffic():
    snapshot = uniform_fleet(4, capacity=10_000)
    engine = RoutingEngine(EngineConfig(p2c_seed=1))
    live = view(4, latency=[10, 10, 10, 40])
    decisions = engine.route_batch([RouteRequest()] * 800, snapshot, live, "power_of_two")
    counts = np.bincount([snapshot.index[d.selected[0]] for d in decisions], minlength=4)
    assert counts[3] < counts[:3].min() / 2
