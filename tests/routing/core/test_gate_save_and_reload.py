"""A saved and reloaded gate gives identical decisions; numpy inference matches torch."""

import numpy as np
import pytest
import torch

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.features import featurize
from routing.core.gate import Gate, GateConfig, gate_from_bytes, gate_to_bytes, train_gate
from routing.core.learning import LearnerConfig
from tests.routing.core.fleets import random_fleet, requests, view
from tests.routing.core.gate_data import planted_fleet, planted_history


@pytest.fixture(scope="module")
def trained_gate() -> Gate:
    gate = Gate(GateConfig(seed=3))
    train_gate(gate, planted_history(800), planted_fleet(), epochs=3)
    return gate


# No exploration: these tests are about the gate, which decides while nothing is learned.
GREEDY = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)  # no exploration


def test_a_reloaded_gate_routes_every_request_identically(trained_gate):
    blob = gate_to_bytes(trained_gate)
    reloaded = gate_from_bytes(blob)
    assert reloaded.config == trained_gate.config
    assert reloaded.metadata["metrics"]["epochs"] == 3

    snapshot = random_fleet(24, seed=4)
    rng = np.random.default_rng(0)
    live = view(24, in_flight=rng.integers(0, 8, 24))
    batch = requests(300, seed=5, with_capabilities=True)
    for strategy in ("switch_transformer", "top_k"):
        first, second = (
            RoutingEngine(EngineConfig(learner_config=GREEDY)),
            RoutingEngine(EngineConfig(learner_config=GREEDY)),
        )
        first.set_gate(trained_gate)
        second.load_gate(blob, version=2)
        assert second.gate_version == 2
        assert summary(first.route_batch(batch, snapshot, live, strategy)) == summary(
            second.route_batch(batch, snapshot, live, strategy)
        )
        singles = [
            [e.route(r, snapshot, live, strategy) for r in batch[:50]] for e in (first, second)
        ]
        assert summary(singles[0]) == summary(singles[1])


def summary(decisions):
    return [(d.selected, d.scores, d.confidence, d.strategy, d.reason) for d in decisions]


def test_numpy_inference_matches_the_torch_forward(trained_gate):
    snapshot = random_fleet(16, seed=1)
    x = featurize(requests(64, seed=2, with_capabilities=True))
    feats, buckets = trained_gate.service_tensors(snapshot)
    trained_gate.eval()
    with torch.no_grad():
        expected = trained_gate(torch.from_numpy(x), feats, buckets).numpy()
    np.testing.assert_allclose(trained_gate.scorer(snapshot).logits(x), expected, atol=1e-4)


def test_a_blob_that_is_not_a_gate_is_refused():
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own unpickling errors
        gate_from_bytes(b"not a gate")


def test_a_fresh_gate_is_deterministic():
    x = featurize(requests(8))
    snapshot = random_fleet(8)
    assert np.array_equal(Gate().scorer(snapshot).logits(x), Gate().scorer(snapshot).logits(x))
