"""Bounded-load consistent hashing: no service ever holds more than ceil((1+eps) * average)."""

import math

from hypothesis import given
from hypothesis import strategies as st

from routing.core.hashing import HashRing, assign_bounded, key_hash
from tests.routing.core.fleets import PROPERTY_SETTINGS


@PROPERTY_SETTINGS
@given(
    n=st.integers(1, 20),
    eps=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    keys=st.lists(st.integers(0, 30), min_size=1, max_size=300),
    ineligible=st.sets(st.integers(0, 19), max_size=5),
)
def test_no_service_exceeds_the_bound_even_with_hot_keys(n, eps, keys, ineligible):
    ids = [f"svc-{i}" for i in range(n)]
    eligible = [i not in ineligible for i in range(n)]
    if not any(eligible):
        eligible[0] = True
    loads = [0.0] * n
    ring = HashRing(ids, vnodes=20)
    picked = assign_bounded(ring, [key_hash(f"k{k}") for k in keys], eligible, loads, eps)

    assert all(p is not None and eligible[p] for p in picked)
    bound = math.ceil((1 + eps) * len(keys) / sum(eligible))
    assert max(loads) <= bound
    assert sum(loads) == len(keys)


def test_hard_limits_are_never_exceeded():
    ids = [f"svc-{i}" for i in range(4)]
    loads = [0.0] * 4
    picked = assign_bounded(
        HashRing(ids), [key_hash("same")] * 10, [True] * 4, loads, eps=10.0, limits=[1, 2, 3, 10]
    )
    assert loads[0] <= 1 and loads[1] <= 2 and loads[2] <= 3
    assert None not in picked


def test_without_load_a_key_goes_to_its_own_service_every_time():
    ring = HashRing([f"svc-{i}" for i in range(8)])
    first = ring.lookup(key_hash("user-42"), [True] * 8)
    assert all(ring.lookup(key_hash("user-42"), [True] * 8) == first for _ in range(10))
    assert first[1] == 0
