"""A breaker opened through outcomes reported to web worker A is honoured by web worker B.

Two uvicorn processes share PostgreSQL and Redis. A consistent-hash key pins requests to one
service X on both workers; failures for X reported to A open its breaker; from then on B must
route that key elsewhere. DESIGN.md's target is 50 ms; the assertion is a generous 1 s (the
measured figure is printed).
"""

import time

import pytest

from tests.integration.stack import wait_known

pytestmark = pytest.mark.integration

BOUND_S = 1.0
# The first opening lasts 5 s (BreakerConfig.base_open_s); B is watched well inside it.
WATCH_S = 2.5


def test_a_breaker_opened_on_worker_a_is_honoured_by_worker_b(cluster, uid):
    a, b = cluster.a, cluster.b
    cap = f"brk-{uid}"
    ids = [f"brk-{uid}-1", f"brk-{uid}-2"]
    for service_id in ids:
        a.register(service_id, [cap])
    wait_known([a, b], ids)
    data = {"type": "it-breaker", "capabilities": [cap], "key": f"user-{uid}"}

    # Both workers pin the key to the same service X while its breaker is closed.
    first = a.ok(a.route(data, "consistent_hash"))
    chosen = first["selected_services"][0]
    (other,) = [s for s in ids if s != chosen]
    warm = b.ok(b.route(data, "consistent_hash"))
    assert warm["selected_services"] == [chosen], "B must pick X too while its breaker is closed"
    # Nothing else stays in flight on X: at this load the hash's load bound is 2 requests.
    b.outcome(warm["request_id"], chosen, True, 5.0)

    # Failures for X reported to A, until A says the breaker opened.
    request_id, opened_at, reports = first["request_id"], None, 0
    while opened_at is None:
        reply = a.outcome(request_id, chosen, False, 80.0, 503)
        reports += 1
        if reply["breaker_state"] == "open":
            opened_at = time.perf_counter()
            break
        assert reports < 20, f"breaker of {chosen} did not open after {reports} failures"
        routed = a.ok(a.route(data, "consistent_hash"))
        assert routed["selected_services"] == [chosen]
        request_id = routed["request_id"]

    # B, from the moment A answered: route the same key over and over.
    seen: list[tuple[float, float, list[str]]] = []
    while time.perf_counter() - opened_at < WATCH_S:
        sent = time.perf_counter()
        routed = b.ok(b.route(data, "consistent_hash"))
        received = time.perf_counter()
        selected = routed["selected_services"]
        seen.append((sent - opened_at, received - opened_at, selected))
        if selected == [other]:
            b.outcome(routed["request_id"], other, True, 5.0)  # keep its load at zero

    assert len(seen) >= 10, f"only {len(seen)} requests reached B in {WATCH_S} s"
    avoided = [received for _, received, selected in seen if chosen not in selected]
    assert avoided, f"B kept selecting {chosen} for {WATCH_S} s after its breaker opened"
    propagation = avoided[0]
    late = [(round(s * 1000, 1), sel) for s, _, sel in seen if s >= BOUND_S and chosen in sel]
    stale = [received for _, received, sel in seen if chosen in sel]
    print(
        f"\nbreaker propagation A -> B: B's first response without {chosen} came "
        f"{propagation * 1000:.1f} ms after A reported the breaker open; "
        f"{len(stale)} of {len(seen)} B requests still selected it"
        + (f" (the last {max(stale) * 1000:.1f} ms after)" if stale else "")
    )
    assert propagation <= BOUND_S
    assert not late, f"B selected {chosen} after {BOUND_S} s with its breaker open: {late[:5]}"
    assert all(sel == [other] for s, _, sel in seen if s >= BOUND_S)

    # Both workers report the open breaker in the service's live state.
    for api in (a, b):
        assert api.service(chosen)["live"]["breaker_state"] == "open"
        assert api.service(other)["live"]["breaker_state"] == "closed"
