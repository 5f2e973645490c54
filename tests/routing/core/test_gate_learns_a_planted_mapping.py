"""Training lowers the loss and learns request type -> best service on held-out requests."""

import random

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.gate import Gate, evaluate_gate, train_gate
from routing.core.learning import LearnerConfig
from tests.routing.core.fleets import view
from tests.routing.core.gate_data import (
    N_SERVICES,
    TYPES,
    best_service,
    planted_fleet,
    planted_history,
    planted_request,
)

# No exploration: these tests are about the gate, which decides while nothing is learned.
GREEDY = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)  # no exploration


def test_training_lowers_the_loss_and_reaches_95_percent_on_held_out_requests():
    snapshot = planted_fleet()
    gate = Gate()
    metrics = train_gate(gate, planted_history(2500, seed=1), snapshot, epochs=12)

    assert metrics["loss_final"] < metrics["loss_initial"]
    assert metrics["val_loss"] < metrics["val_loss_initial"]

    engine = RoutingEngine(EngineConfig(learner_config=GREEDY))
    engine.set_gate(gate, version="test")
    rng = random.Random(99)
    held_out = [planted_request(rng, rng.choice(TYPES)) for _ in range(800)]
    idle = view(N_SERVICES)
    hits = sum(
        engine.route(r, snapshot, idle, "switch_transformer").selected[0]
        == best_service(r.request_type)
        for r in held_out
    )
    assert hits / len(held_out) >= 0.95


def test_an_untrained_gate_does_not_know_the_mapping():
    snapshot = planted_fleet()
    before = evaluate_gate(Gate(), planted_history(500, seed=2), snapshot)
    gate = Gate()
    train_gate(gate, planted_history(2000, seed=3), snapshot, epochs=10)
    after = evaluate_gate(gate, planted_history(500, seed=2), snapshot)
    assert after["loss"] < before["loss"]
    assert after["agreement_on_good"] > before["agreement_on_good"]


def test_history_for_unknown_services_is_skipped_not_fatal():
    snapshot = planted_fleet()
    history = planted_history(50)
    history[0] = type(history[0])(history[0].request, "gone-service", True, 5.0)
    metrics = train_gate(Gate(), history, snapshot, epochs=1)
    assert metrics["skipped"] == 1
