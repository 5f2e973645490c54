"""Every learned decision logs the probability with which its first service was chosen; over
many identical decisions the observed frequencies match those probabilities, exploration goes
mostly to candidates that may be better (the rest, ``epsilon_uniform``, to any), and it decays
as evidence grows."""

from collections import Counter

import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.learning import LearnerConfig
from routing.core.types import RouteRequest
from tests.routing.core.fleets import uniform_fleet, view


def teach(engine, rewards, n):
    for sid, reward in rewards.items():
        for i in range(n):  # a reward given as a pair alternates between the two
            r = reward[i % 2] if isinstance(reward, tuple) else reward
            engine.learner.observe(sid, "", 0.5, r)


@pytest.mark.parametrize("path", ["single", "batch"])
def test_observed_choice_frequencies_match_the_logged_propensities(path):
    # Fixed epsilon 0.3, a third of it uniform: frequencies testable.
    config = LearnerConfig(epsilon=0.3, epsilon_min=0.3, epsilon_uniform=0.1)
    engine = RoutingEngine(EngineConfig(p2c_seed=5, learner_config=config))
    snapshot = uniform_fleet(4, capacity=100_000)  # the batch must not fill any service
    # svc-002 is as noisy as svc-001 and 0.01 behind it (it may be the better one); svc-000
    # and svc-003 are clearly worse.
    rewards = {"svc-000": 0.2, "svc-001": (1.0, 0.8), "svc-002": (0.99, 0.79), "svc-003": 0.1}
    teach(engine, rewards, 20)
    request = RouteRequest(complexity=0.5)
    n = 8000
    if path == "single":
        decisions = [
            engine.route(request, snapshot, view(4), "switch_transformer") for _ in range(n)
        ]
    else:
        decisions = engine.route_batch(
            [request] * n, snapshot, view(4, [0] * 4), "switch_transformer"
        )
    counts = Counter(d.selected[0] for d in decisions)
    logged = {d.selected[0]: d.propensity for d in decisions}
    assert logged["svc-001"] == pytest.approx(0.7 + 0.1 / 4)  # greedy
    assert logged["svc-002"] == pytest.approx(0.1 / 4 + 0.2)  # plausible: the directed share
    assert logged["svc-000"] == pytest.approx(0.1 / 4)  # ruled out: the uniform share only
    assert logged["svc-003"] == pytest.approx(0.1 / 4)
    for sid, p in logged.items():
        assert counts[sid] / n == pytest.approx(p, abs=0.02)
    mean, evidence, score = engine.learner.scores("", 0.5, snapshot.service_ids)
    expected = engine.learner.probabilities(score, float(evidence.sum()), evidence, score - mean)
    assert [logged[sid] for sid in snapshot.service_ids] == pytest.approx(expected.tolist())


@pytest.mark.parametrize("directed", [False, True])
def test_exploration_decays_with_evidence_down_to_its_floor(directed):
    # epsilon_uniform >= epsilon: plain epsilon-greedy (all of it uniform).
    config = LearnerConfig() if directed else LearnerConfig(epsilon_uniform=1.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=1, learner_config=config))
    snapshot = uniform_fleet(3)
    request = RouteRequest(complexity=0.5)
    fresh = engine.route(request, snapshot, view(3), "switch_transformer")
    teach(engine, {"svc-000": 0.9, "svc-001": 0.5, "svc-002": 0.4}, 200)
    greedy = [engine.route(request, snapshot, view(3), "switch_transformer") for _ in range(50)]
    p_best = max(d.propensity for d in greedy)
    cfg = engine.learner.config
    assert fresh.propensity < p_best
    if directed:  # neither other service may be better: only the uniform share leaves
        assert p_best == pytest.approx(1 - cfg.epsilon_uniform + cfg.epsilon_uniform / 3)
    else:
        assert p_best == pytest.approx(1 - cfg.epsilon_min + cfg.epsilon_min / 3, abs=0.01)


def test_deterministic_strategies_log_propensity_one():
    engine = RoutingEngine(EngineConfig(p2c_seed=1))
    for strategy in ("semantic", "consistent_hash", "tda_aware"):
        d = engine.route(RouteRequest(key="k"), uniform_fleet(3), view(3), strategy)
        assert d.propensity == 1.0


def test_power_of_two_logs_the_probability_of_its_pick():
    engine = RoutingEngine(EngineConfig(p2c_seed=2))
    # Four services, distinct costs by latency: the cheapest is picked with 2*3/(4*3) = 1/2.
    live = view(4, latency=[10.0, 20.0, 30.0, 40.0])
    decisions = [engine.route(RouteRequest(), uniform_fleet(4), live, "power_of_two")
                 for _ in range(4000)]  # fmt: skip
    counts = Counter(d.selected[0] for d in decisions)
    logged = {d.selected[0]: d.propensity for d in decisions}
    for sid, p in logged.items():
        assert counts[sid] / 4000 == pytest.approx(p, abs=0.03)
    assert logged["svc-000"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "latency, in_flight",
    [
        ([10.0, 10.0, 10.0, 10.0], [0, 0, 0, 0]),  # an idle, alike fleet: every cost ties
        ([10.0, 10.0, 20.0, 20.0], [0, 0, 0, 0]),  # two tied pairs
        ([10.0, 20.0, 10.0, 40.0], [0, 0, 0, 0]),
    ],
)
def test_power_of_two_logs_the_probability_of_its_pick_when_costs_tie(latency, in_flight):
    """A pair of equal cost (and equal load) keeps the one sampled first: each wins half of
    the time. Counting ties as wins logged 2/n on an idle, alike fleet, twice the truth."""
    engine = RoutingEngine(EngineConfig(p2c_seed=3))
    live = view(4, in_flight=in_flight, latency=latency)
    n = 8000
    decisions = [
        engine.route(RouteRequest(), uniform_fleet(4), live, "power_of_two") for _ in range(n)
    ]
    counts = Counter(d.selected[0] for d in decisions)
    logged: dict[str, set] = {}
    for d in decisions:
        logged.setdefault(d.selected[0], set()).add(round(d.propensity, 9))
    for sid, ps in logged.items():
        assert len(ps) == 1, (sid, ps)
        assert counts[sid] / n == pytest.approx(ps.pop(), abs=0.02), (sid, counts)


def test_a_mixed_batch_logs_each_groups_own_probabilities():
    """One batch of three request types, each with its own candidates (two, two, all eight):
    the learned strategies route every group in one pass, and each decision's propensity is
    still its own group's probability (epsilon spread over that group's candidates)."""
    config = LearnerConfig(epsilon=0.3, epsilon_min=0.3, epsilon_uniform=0.3, forced_share=0.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=7, learner_config=config))
    snapshot = uniform_fleet(8, capacity=100_000)  # types cycle: inference, analysis, ...
    best = {"inference": "svc-004", "analysis": "svc-001", "": "svc-006"}
    for rtype, winner in best.items():
        for sid in snapshot.service_ids:
            for _ in range(20):
                engine.learner.observe(sid, rtype, 0.5, 0.9 if sid == winner else 0.2)
    kinds = ["inference", "", "analysis", "", "inference"]  # interleaved groups
    batch = [RouteRequest(request_type=kinds[i % 5], complexity=0.5) for i in range(15_000)]
    decisions = engine.route_batch(batch, snapshot, view(8), "switch_transformer")

    candidates = {"inference": {"svc-000", "svc-004"}, "analysis": {"svc-001", "svc-005"}}
    candidates[""] = set(snapshot.service_ids)
    for rtype, able in candidates.items():
        mine = [d for r, d in zip(batch, decisions, strict=True) if r.request_type == rtype]
        counts = Counter(d.selected[0] for d in mine)
        assert set(counts) == able, rtype
        n_able = len(able)
        for d in mine:
            greedy = d.selected[0] == best[rtype]
            expected = 0.7 + 0.3 / n_able if greedy else 0.3 / n_able
            assert d.propensity == pytest.approx(expected), (rtype, d.selected)
        for sid, count in counts.items():
            p = next(d.propensity for d in mine if d.selected[0] == sid)
            assert count / len(mine) == pytest.approx(p, abs=0.025), (rtype, sid)
