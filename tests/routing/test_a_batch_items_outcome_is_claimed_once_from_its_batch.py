"""A batch item's outcome is accepted once per selected service, with the item's own request
type and complexity, on both backends. With Redis a batch's pending entries are one value
(routing/runtime.py: pending_blob) that a claim reads one entry of; these requests check that
every entry is found where it should be (non-ASCII text before it included), that an item
without a service or an id the router never made finds nothing, and that a claimed entry keeps
the batch's time to live."""

import pytest
from django.conf import settings

from routing.runtime import PENDING_KEY, batch_base, get_router, pending_blob, pending_value
from tests.support.outcomes import report

pytestmark = pytest.mark.django_db(transaction=True)


def route_batch(client, requests):
    answer = client.post("/api/v1/route/batch", {"requests": requests}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_each_item_reports_once_per_selected_service_with_its_own_features(client_api, fleet):
    items = route_batch(
        client_api,
        [
            {"type": "inférence-ü", "complexity": 0.11},  # unknown type: any service may serve
            {"type": "storage", "complexity": 0.42},
            {"type": "inference", "capabilities": ["teleport"]},  # nobody can serve it
            {"type": "analysis", "complexity": 0.87},
        ],
    )
    first, storage, nobody, analysis = items
    assert nobody["selected_services"] == []
    learner = get_router().engine.learner

    for item, request_type, complexity in (
        (analysis, "analysis", 0.87),  # after the non-ASCII entry: offsets are in bytes
        (first, "inférence-ü", 0.11),
        (storage, "storage", 0.42),
    ):
        service = item["selected_services"][0]
        before = learner.estimates(request_type, complexity, [service])[1][0]

        assert report(client_api, item["request_id"], service).status_code == 200
        assert report(client_api, item["request_id"], service).status_code == 409

        after = learner.estimates(request_type, complexity, [service])[1][0]
        assert after > before  # the outcome taught the item's own type and complexity

    other = next(s for s in ("inf-a", "store-a") if s not in analysis["selected_services"])
    assert report(client_api, analysis["request_id"], other).status_code == 400
    assert report(client_api, nobody["request_id"], "inf-a").status_code == 404


def test_an_id_the_router_did_not_make_finds_no_entry(client_api, fleet):
    items = route_batch(client_api, [{"type": "inference"}] * 3)
    base = batch_base(items[0]["request_id"])
    service = items[1]["selected_services"][0]

    for made_up in (f"{base}-01", f"{base}-+1", f"{base}-3", f"{base}-x", f"{base}-"):
        assert report(client_api, made_up, service).status_code == 404, made_up
    assert report(client_api, items[1]["request_id"], service).status_code == 200


def test_a_claimed_entry_keeps_its_batchs_time_to_live(client_api, fleet):
    items = route_batch(client_api, [{"type": "inference"}] * 2)
    request_id = items[1]["request_id"]
    assert report(client_api, request_id, items[1]["selected_services"][0]).status_code == 200
    if not settings.REDIS_URL:
        return  # the local table ages entries out by their routing time (test_outcomes.py)
    client = get_router().redis_client
    batch_ttl = client.pttl(PENDING_KEY + batch_base(request_id))
    item_ttl = client.pttl(PENDING_KEY + request_id)
    assert 0 < item_ttl <= batch_ttl <= settings.MOE_PENDING_TTL_SECONDS * 1000


def test_the_batch_value_holds_each_items_entry_between_its_offsets():
    from routing.core.types import Decision, RouteRequest
    from routing.runtime import Routed

    def routed(selected):
        decision = Decision(*[None] * len(Decision._fields))._replace(selected=selected)
        return Routed("r", decision, None, None)

    def request(request_type, complexity):
        fields = dict.fromkeys(RouteRequest._fields)
        return RouteRequest(**{**fields, "request_type": request_type, "complexity": complexity})

    rows = [
        (("svc-é",), "ünïcode", 0.5),
        ((), "none", 0.1),
        (("a", "b", "c"), "inference", 0.25),
    ]
    blob = pending_blob([routed(s) for s, _, _ in rows], [request(t, c) for _, t, c in rows])

    n = int(blob[:8], 16)
    offsets = [int(blob[8 + 8 * i : 16 + 8 * i], 16) for i in range(n + 1)]
    entries = [blob[offsets[i] : offsets[i + 1]].decode() for i in range(n)]
    assert n == 3
    assert offsets[-1] == len(blob)
    assert entries == [pending_value(s, t, c) if s else "" for s, t, c in rows]
