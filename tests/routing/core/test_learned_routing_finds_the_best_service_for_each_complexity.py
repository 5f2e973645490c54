"""From reported outcomes alone, the learned strategies find the best candidate per request
type and complexity (the best one changes with complexity), and beat uniform random."""

import random

import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.objective import Objective
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service, view

# Hidden profiles: (success probability, latency ms) as a function of complexity.
PROFILES = {
    "small": lambda c: (0.97 if c < 0.5 else 0.55, 40.0),
    "large": lambda c: (0.90, 250.0 if c < 0.5 else 120.0),
    "flaky": lambda c: (0.6, 80.0),
    "store": lambda c: (0.99, 10.0),  # another type: never a candidate for inference
}
TYPES = {"small": "inference", "large": "inference", "flaky": "inference", "store": "storage"}
OBJECTIVE = Objective()


def best(complexity: float) -> str:
    def value(name):
        p, latency = PROFILES[name](complexity)
        return p * OBJECTIVE.reward(True, latency)

    return max(("small", "large", "flaky"), key=value)


def simulate(strategy: str, n: int, seed: int = 0):
    rng = random.Random(seed)
    snapshot = FleetSnapshot.build([service(s, TYPES[s]) for s in PROFILES])
    engine = RoutingEngine(EngineConfig(p2c_seed=seed))
    live = view(len(snapshot))
    picks = []
    for _ in range(n):
        c = rng.random()
        request = RouteRequest(request_type="inference", complexity=c)
        decision = engine.route(request, snapshot, live, strategy)
        chosen = decision.selected[0]
        p, latency = PROFILES[chosen](c)
        ok = rng.random() < p
        engine.learner.observe_outcome(chosen, "inference", c, ok, latency)
        picks.append((chosen, best(c)))
    return picks


@pytest.mark.parametrize("strategy", ["switch_transformer", "adaptive", "top_k"])
def test_after_2000_outcomes_the_best_service_is_chosen_at_least_95_percent(strategy):
    picks = simulate(strategy, 3000)
    late = picks[2000:]
    optimal = sum(chosen == oracle for chosen, oracle in late) / len(late)
    assert optimal >= 0.95, optimal
    assert all(chosen != "store" for chosen, _ in picks)


def test_learning_beats_uniform_random_among_candidates_by_far():
    picks = simulate("switch_transformer", 2500, seed=3)
    learned = sum(c == o for c, o in picks[1500:]) / 1000
    # Uniform random among the three candidates is optimal a third of the time.
    assert learned > 0.33 + 0.4


def test_without_outcomes_nothing_is_learned():
    engine = RoutingEngine(EngineConfig(p2c_seed=1))
    snapshot = FleetSnapshot.build([service(s, TYPES[s]) for s in PROFILES])
    counts = {}
    for i in range(600):
        d = engine.route(
            RouteRequest(request_type="inference", complexity=(i % 10) / 10),
            snapshot,
            view(4),
            "switch_transformer",
        )
        counts[d.selected[0]] = counts.get(d.selected[0], 0) + 1
    assert set(counts) <= {"small", "large", "flaky"}
    assert engine.learner.outcomes == 0
