"""Whoever holds a request id may report its outcome, so one client must not be able to derive
another client's request ids from its own: it could report outcomes that did not happen (and
teach the learner them), or pre-empt the real report, which would then be refused as a
duplicate."""

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"data": {"type": "inference", "complexity": 0.4}}


def _neighbours(request_id: str, reach: int = 3) -> set[str]:
    """Every id that differs from ``request_id`` in one run of hex digits by at most ``reach``
    up or down (a counter, a timestamp, a batch index), keeping its width; and the id with a
    batch index appended, for the first items of a batch made just after it."""
    out = set()
    for run in re.finditer(r"[0-9a-f]+", request_id):
        digits = run.group()
        value = int(digits, 16)
        for step in range(-reach, reach + 1):
            if step and value + step >= 0:
                moved = f"{value + step:0{len(digits)}x}"
                out.add(request_id[: run.start()] + moved + request_id[run.end() :])
    return out | {f"{guess}-{i:x}" for guess in set(out) for i in range(3)}


def test_the_next_clients_request_id_is_not_a_neighbour_of_mine(api_for, django_user_model, fleet):
    attacker = api_for(django_user_model.objects.create_user("mallory", password="m-pass-1234"))
    victim = api_for(django_user_model.objects.create_user("alice", password="a-pass-1234"))

    mine = attacker.post("/api/v1/route", BODY, format="json").json()
    theirs = victim.post("/api/v1/route", BODY, format="json").json()
    batch = victim.post("/api/v1/route/batch", {"requests": [BODY["data"]] * 2}, format="json")
    theirs_in_batch = [r["request_id"] for r in batch.json()["results"]]

    guesses = _neighbours(mine["request_id"])
    assert theirs["request_id"] not in guesses
    assert not guesses & set(theirs_in_batch)
    service = theirs["selected_services"][0]
    for guess in sorted(guesses)[:40]:  # the API answers each guess as unknown
        response = attacker.post(
            f"/api/v1/route/{guess}/outcome",
            {"service_id": service, "success": False, "status_code": 503},
            format="json",
        )
        assert response.status_code == 404, (guess, response.json())
    # ... so the real report is the first one.
    response = victim.post(
        f"/api/v1/route/{theirs['request_id']}/outcome",
        {"service_id": service, "success": True, "latency_ms": 20.0},
        format="json",
    )
    assert response.status_code == 200, response.json()


def test_request_ids_are_distinct_and_fit_the_history_column(client_api, fleet):
    ids = [client_api.post("/api/v1/route", BODY, format="json").json() for _ in range(50)]
    ids = [r["request_id"] for r in ids]
    batch = client_api.post(
        "/api/v1/route/batch", {"requests": [BODY["data"]] * 300}, format="json"
    )
    ids += [r["request_id"] for r in batch.json()["results"]]

    assert len(set(ids)) == len(ids) == 350
    from routing.models import RoutingDecision

    limit = RoutingDecision._meta.get_field("request_id").max_length
    assert max(map(len, ids)) <= limit
