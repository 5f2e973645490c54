"""When one of N services leaves the ring, only its keys move, and about 1/N of all keys."""

from hypothesis import given
from hypothesis import strategies as st

from routing.core.hashing import HashRing, key_hash
from tests.routing.core.fleets import PROPERTY_SETTINGS

KEYS = [f"user-{i}" for i in range(3000)]


def owners(ids: list[str]) -> dict[str, str]:
    ring = HashRing(ids)
    everyone = [True] * len(ids)
    return {k: ids[ring.lookup(key_hash(k), everyone)[0]] for k in KEYS}


@PROPERTY_SETTINGS
@given(n=st.integers(4, 40), leaving=st.integers(0, 1000))
def test_only_the_leaving_services_keys_move_and_about_one_in_n(n, leaving):
    ids = [f"svc-{i}" for i in range(n)]
    gone = ids[leaving % n]
    before = owners(ids)
    after = owners([s for s in ids if s != gone])

    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == gone for k in moved)
    assert sum(1 for k in KEYS if before[k] == gone) == len(moved)
    # 100 virtual nodes per service keep each share within a factor of ~2 of 1/N.
    assert 0.4 / n <= len(moved) / len(KEYS) <= 2.0 / n


def test_an_ineligible_service_moves_only_its_own_keys():
    ids = [f"svc-{i}" for i in range(10)]
    ring = HashRing(ids)
    everyone = [True] * 10
    without_3 = [i != 3 for i in range(10)]
    for k in KEYS:
        own = ring.lookup(key_hash(k), everyone)[0]
        now = ring.lookup(key_hash(k), without_3)[0]
        assert now == own or own == 3


def test_a_joining_service_takes_keys_only_for_itself():
    ids = [f"svc-{i}" for i in range(10)]
    before = owners(ids)
    after = owners(ids + ["svc-new"])
    assert all(after[k] == "svc-new" for k in KEYS if before[k] != after[k])
