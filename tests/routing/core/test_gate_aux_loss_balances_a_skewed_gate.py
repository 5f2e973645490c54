"""The Switch auxiliary loss alone moves a gate that favours one service toward balance."""

import random

import numpy as np
import torch

from routing.core.balancing import jain_index
from routing.core.features import featurize
from routing.core.gate import Gate, GateExample, service_bucket, switch_aux_loss, train_gate
from tests.routing.core.gate_data import N_SERVICES, planted_fleet, planted_request


def mean_router_probabilities(gate: Gate, snapshot, requests) -> np.ndarray:
    logits = gate.scorer(snapshot).logits(featurize(requests))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).mean(axis=0)


def test_aux_loss_training_spreads_the_router_probabilities():
    # given a gate that puts ~3/4 of the probability on svc-0 for every request
    snapshot = planted_fleet()
    gate = Gate()
    with torch.no_grad():
        gate.id_bias[service_bucket("svc-0", gate.config.id_buckets)] = 3.0
    rng = random.Random(5)
    requests = [planted_request(rng) for _ in range(1000)]
    before = mean_router_probabilities(gate, snapshot, requests)
    assert before[0] > 0.7

    # when it trains on the auxiliary loss only
    history = [GateExample(r, "svc-0", True, 10.0) for r in requests]
    metrics = train_gate(
        gate,
        history,
        snapshot,
        epochs=20,
        lr=1e-2,
        task_loss_coef=0.0,
        aux_loss_coef=1.0,
        z_loss_coef=0.0,
    )

    # then the probabilities move toward uniform and the loss toward its balanced value 1
    after = mean_router_probabilities(gate, snapshot, requests)
    assert after[0] < 2.0 / N_SERVICES
    assert jain_index(after) > 0.95 > jain_index(before)
    assert metrics["aux_loss_final"] < 0.5 * metrics["loss_initial"]


def test_the_aux_loss_is_one_when_balanced_and_n_when_collapsed():
    n = 4
    balanced = torch.eye(n).repeat(8, 1) * 5
    collapsed = torch.zeros(32, n)
    collapsed[:, 0] = 50.0
    assert abs(switch_aux_loss(balanced).item() - 1.0) < 0.05
    assert abs(switch_aux_loss(collapsed).item() - n) < 0.05
