"""A batch never overfills a service that one-by-one routing would have spilled."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.core.engine import RoutingEngine
from routing.core.strategies import STRATEGY_NAMES, assign_in_order
from routing.core.types import RouteRequest
from tests.routing.core.fleets import PROPERTY_SETTINGS, requests, uniform_fleet, view


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_a_batch_larger_than_the_room_left_fills_up_then_reports_no_eligible(strategy):
    snapshot = uniform_fleet(3, capacity=5)
    live = view(3, in_flight=[1, 0, 2])  # room for 4 + 5 + 3 = 12
    batch = [RouteRequest(key=f"k{i % 3}") for i in range(20)]  # no type: any service

    decisions = RoutingEngine().route_batch(batch, snapshot, live, strategy, top_k=1)

    counts = np.zeros(3)
    for d in decisions:
        for service_id in d.selected:
            counts[snapshot.index[service_id]] += 1
    assert (counts + live.in_flight <= snapshot.capacity).all()
    assert sum(not d.no_eligible_service for d in decisions) == 12
    # Which 8 find no room depends on each strategy's preferences (and exploration).
    refused = [d for d in decisions if d.no_eligible_service]
    assert len(refused) == 8
    assert all("within this batch" in d.reason for d in refused)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_batch_and_single_routing_agree_on_eligibility(strategy):
    snapshot = uniform_fleet(6, capacity=1000)
    live = view(6, allows=[True, False, True, True, True, True])
    decisions = RoutingEngine().route_batch(requests(200, seed=1), snapshot, live, strategy)
    assert not any(d.no_eligible_service for d in decisions)
    assert all(snapshot.service_ids[1] not in d.selected for d in decisions)


def test_each_batch_decision_reports_its_share_of_the_batch_time():
    snapshot = uniform_fleet(4)
    decisions = RoutingEngine().route_batch(requests(50), snapshot, view(4), "power_of_two")
    assert len({d.latency_ms for d in decisions}) == 1
    assert decisions[0].latency_ms > 0


@PROPERTY_SETTINGS
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([5, 100]),  # rooms below 5: columns fill up; up to 100: often room for all
)
def test_in_order_assignment_never_overfills_and_leaves_no_row_behind_needlessly(
    m, n, seed, most_room
):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(m, n)).astype(np.float32)
    scores[rng.random((m, n)) < 0.3] = -np.inf
    room = rng.integers(0, most_room, size=n).astype(np.float64)
    remaining = room.copy()

    choice = assign_in_order(scores, remaining)

    counts = np.bincount(choice[choice >= 0], minlength=n)
    assert (counts <= room).all()
    assert (remaining == room - counts).all()
    for row, col in enumerate(choice):
        allowed = np.isfinite(scores[row])
        if col >= 0:
            assert allowed[col]
            # nothing it preferred still had room
            assert not ((scores[row] > scores[row, col]) & (remaining > 0)).any()
        else:
            assert not (allowed & (remaining > 0)).any()


def one_row_at_a_time(scores: np.ndarray, room: np.ndarray) -> list[int]:
    """The reference: each row in turn takes its best column that still has room."""
    left = room.copy()
    out = []
    for row in scores:
        open_ = np.isfinite(row) & (left > 0)
        if not open_.any():
            out.append(-1)
            continue
        col = int(np.argmax(np.where(open_, row, -np.inf)))
        left[col] -= 1
        out.append(col)
    return out


@PROPERTY_SETTINGS
@given(
    st.integers(1, 60),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([3, 8, 100]),
)
def test_in_order_assignment_is_one_row_at_a_time(m, n, seed, most_room):
    """Row i gets what rows 0..i-1 left, never a column a later row took first: a row's
    logged propensity depends on which services were full at its turn (learned.py)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(m, n))
    scores[rng.random((m, n)) < 0.3] = -np.inf
    room = rng.integers(0, most_room, size=n).astype(np.float64)

    assert assign_in_order(scores, room.copy()).tolist() == one_row_at_a_time(scores, room)


@pytest.mark.parametrize("strategy", ["switch_transformer", "top_k", "adaptive"])
def test_capacity_goes_to_the_earlier_requests_of_the_batch_whatever_their_group(strategy):
    """Two groups share a service with room for three: requests take it in batch order, so
    the fifth request (of the first group) finds it full, whatever order the groups come in."""
    from routing.core.engine import EngineConfig
    from routing.core.learning import LearnerConfig
    from routing.core.types import FleetSnapshot
    from tests.routing.core.fleets import service

    snapshot = FleetSnapshot.build(
        [service("gpu-a", capabilities=("gpu",), max_capacity=3), service("cpu-b")]
    )
    greedy = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=1, learner_config=greedy))
    for _ in range(50):
        engine.learner.observe("gpu-a", "inference", 0.5, 0.9)
        engine.learner.observe("cpu-b", "inference", 0.5, 0.3)
    gpu = RouteRequest(request_type="inference", capabilities=("gpu",))
    any_ = RouteRequest(request_type="inference")
    batch = [gpu, any_, any_, any_, gpu]

    decisions = engine.route_batch(batch, snapshot, view(2), strategy, top_k=1)

    firsts = [d.selected[0] if d.selected else None for d in decisions]
    assert firsts == ["gpu-a", "gpu-a", "gpu-a", "cpu-b", None]


@pytest.mark.parametrize("strategy", ["switch_transformer", "top_k"])
def test_a_batch_routed_in_chunks_fills_a_service_in_batch_order(strategy, monkeypatch):
    """The learned strategies take a large batch a chunk of rows at a time (256 here): each
    chunk sees what the earlier ones took, so the best service's 300 slots go to the first 300
    requests, across chunk boundaries, and never one more."""
    from routing.core.engine import EngineConfig
    from routing.core.learning import LearnerConfig
    from routing.core.strategies import learned
    from routing.core.types import FleetSnapshot
    from tests.routing.core.fleets import service

    monkeypatch.setattr(learned, "CHUNK_CELLS", 1)  # the smallest chunk: 256 rows
    snapshot = FleetSnapshot.build(
        [service("best", max_capacity=300), service("other", max_capacity=10_000)]
    )
    greedy = LearnerConfig(epsilon=0.0, epsilon_min=0.0, forced_share=0.0)
    engine = RoutingEngine(EngineConfig(p2c_seed=1, learner_config=greedy))
    for _ in range(50):
        engine.learner.observe("best", "inference", 0.5, 0.9)
        engine.learner.observe("other", "inference", 0.5, 0.3)
    batch = [RouteRequest(request_type="inference")] * 1000

    decisions = engine.route_batch(batch, snapshot, view(2), strategy, top_k=1)

    firsts = [d.selected[0] for d in decisions]
    assert firsts == ["best"] * 300 + ["other"] * 700
