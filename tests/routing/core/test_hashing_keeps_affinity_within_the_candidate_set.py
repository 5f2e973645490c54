"""consistent_hash maps a key onto the services that can serve the request (a ring per
candidate set): other types' services joining or leaving move none of its keys, one of its
own leaving moves only that one's keys, and the bounded load holds within the set."""

import math

import numpy as np

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service, view

KEYS = [f"user-{i}" for i in range(2000)]


def fleet(n_inference=10, n_storage=10, drop=None):
    specs = [service(f"inf-{i}", "inference") for i in range(n_inference) if f"inf-{i}" != drop]
    specs += [service(f"sto-{i}", "storage") for i in range(n_storage)]
    return FleetSnapshot.build(specs)


def owners(snapshot, live=None):
    engine = RoutingEngine(EngineConfig())
    live = live or view(len(snapshot))
    return {
        k: engine.route(
            RouteRequest(request_type="inference", key=k), snapshot, live, "consistent_hash"
        ).selected[0]
        for k in KEYS
    }


def test_keys_go_only_to_services_of_the_requests_type():
    assert {s[:4] for s in owners(fleet()).values()} == {"inf-"}


def test_other_types_joining_or_leaving_move_no_key():
    before = owners(fleet(n_storage=10))
    assert owners(fleet(n_storage=25)) == before
    assert owners(fleet(n_storage=0)) == before


def test_one_candidate_leaving_moves_only_its_own_keys():
    before = owners(fleet())
    after = owners(fleet(drop="inf-3"))
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == "inf-3"}
    assert 0.03 < len(moved) / len(KEYS) < 0.2  # about 1/10


def test_bounded_load_holds_within_the_candidate_set():
    snapshot = fleet()
    # Storage services are busy; that must not count toward the inference bound.
    in_flight = np.array(
        [0.0 if s.service_type == "inference" else 50.0 for s in snapshot.services]
    )
    engine = RoutingEngine(EngineConfig(hash_eps=0.25))
    decisions = engine.route_batch(
        [RouteRequest(request_type="inference", key=k) for k in KEYS[:500]],
        snapshot, view(len(snapshot), in_flight=in_flight), "consistent_hash",
    )  # fmt: skip
    counts = {}
    for d in decisions:
        counts[d.selected[0]] = counts.get(d.selected[0], 0) + 1
    assert set(counts) <= {f"inf-{i}" for i in range(10)}
    assert max(counts.values()) <= math.ceil(1.25 * 500 / 10)
