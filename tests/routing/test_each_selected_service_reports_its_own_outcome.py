"""A top-k decision takes one lease per selected service and accepts one outcome report per
selected service; each report releases that service's lease, feeds the online learner with
the objective's reward, and the primary service's report is the one history keeps."""

import pytest

from routing.history import flush_history
from routing.models import RoutingDecision
from routing.runtime import get_router
from tests.support.outcomes import report

pytestmark = pytest.mark.django_db(transaction=True)


def in_flight(service_id):
    return get_router().live_states([service_id])[service_id]["in_flight"]


def test_both_services_of_a_top_2_decision_report_once_each(client_api, fleet):
    body = client_api.post(
        "/api/v1/route",
        {"data": {"type": "inference"}, "routing_strategy": "top_k", "top_k": 2},
        format="json",
    ).json()
    first, second = body["selected_services"]
    assert in_flight(first) == 1 and in_flight(second) == 1

    ok = report(client_api, body["request_id"], second, latency_ms=250.0)
    assert ok.status_code == 200
    assert ok.json()["reward"] == pytest.approx(0.75)  # 1 - 250 / 1000 ms
    assert in_flight(second) == 0 and in_flight(first) == 1
    assert report(client_api, body["request_id"], second).status_code == 409
    assert report(client_api, body["request_id"], first, success=False).status_code == 200
    assert in_flight(first) == 0
    assert report(client_api, body["request_id"], "store-a").status_code == 400

    flush_history()
    row = RoutingDecision.objects.get(request_id=body["request_id"])
    # The primary's (first) report is kept, though it arrived last.
    assert (row.outcome_service, row.success, row.reward) == (first, False, 0.0)


def test_outcomes_teach_the_learner_with_the_objectives_reward(client_api, fleet):
    learner = get_router().engine.learner
    body = client_api.post(
        "/api/v1/route", {"data": {"type": "inference", "complexity": 0.9}}, format="json"
    ).json()
    service = body["selected_services"][0]
    report(client_api, body["request_id"], service, latency_ms=100.0)

    mean, evidence = learner.estimates("inference", 0.9, [service])
    assert learner.outcomes == 1
    assert evidence[0] > 0.4  # one outcome, shared by the two knots around 0.9
    # one outcome of reward 0.9 against the optimistic prior (1.0, weight 1)
    assert 0.9 < mean[0] < 1.0


def test_every_decision_logs_its_propensity_and_candidates(client_api, fleet):
    body = client_api.post(
        "/api/v1/route",
        {"data": {"type": "inference"}, "routing_strategy": "switch_transformer"},
        format="json",
    ).json()
    assert 0 < body["propensity"] <= 1
    report(client_api, body["request_id"], body["selected_services"][0], latency_ms=10.0)
    flush_history()
    row = RoutingDecision.objects.get(request_id=body["request_id"])
    assert row.propensity == pytest.approx(body["propensity"])
    assert sorted(row.features["candidates"]) == ["inf-a", "inf-b"]
    assert row.reward == pytest.approx(0.99)
