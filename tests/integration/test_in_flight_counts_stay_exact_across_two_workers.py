"""In-flight counts stay exact under concurrent requests spread over both web workers.

N requests routed at once (threads, half to each uvicorn process) are all in flight in the
shared Redis state, whichever worker is asked; once every outcome is reported (each to the
worker that did not route it) the counts are back to zero everywhere.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.stack import wait_known, wait_until

pytestmark = pytest.mark.integration

N = 40


def in_flight(api, cap: str) -> dict[str, int]:
    return {s["service_id"]: s["live"]["in_flight"] for s in api.services_with(cap)}


def test_in_flight_counts_stay_exact_across_two_workers(cluster, uid):
    a, b = cluster.a, cluster.b
    cap = f"inf-{uid}"
    ids = [f"inf-{uid}-{i}" for i in range(3)]
    for service_id in ids:
        a.register(service_id, [cap], max_capacity=1000)
    wait_known([a, b], ids)
    data = {"type": "it-inflight", "capabilities": [cap]}
    workers = [a if i % 2 == 0 else b for i in range(N)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda api: api.route(data, "power_of_two"), workers))
    routed = [api.ok(r) for api, r in zip(workers, responses, strict=True)]
    assert all(len(r["selected_services"]) == 1 for r in routed)
    expected = {sid: 0 for sid in ids}
    for r in routed:
        expected[r["selected_services"][0]] += 1
    assert sum(expected.values()) == N

    for api in (a, b):
        counts = in_flight(api, cap)
        assert sum(counts.values()) == N, f"{api.base_url}: {counts}"
        assert counts == expected, f"{api.base_url}: {counts} != {expected}"

    # Each outcome goes to the other worker: the pending entry is shared too.
    other = {id(a): b, id(b): a}
    jobs = [
        (other[id(api)], r["request_id"], r["selected_services"][0])
        for api, r in zip(workers, routed, strict=True)
    ]
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda j: j[0].outcome(j[1], j[2], True, 12.0, 200), jobs))
    assert all(reply["recorded"] for reply in replies)

    for api in (a, b):
        wait_until(
            lambda api=api: sum(in_flight(api, cap).values()) == 0,
            2.0,
            f"in-flight back to 0 on {api.base_url}",
        )
        assert in_flight(api, cap) == {sid: 0 for sid in ids}
