"""A retrain right after outcomes were reported learns from them: it drains the history
buffers first instead of waiting for the next scheduled flush (seen: `manage.py retrain_gate`
straight after a client reported its outcomes said "only 0 examples")."""

import pytest

from routing.training import MIN_EXAMPLES, retrain_gate

pytestmark = pytest.mark.django_db


def test_a_retrain_sees_outcomes_reported_a_moment_ago(operator_api, fleet):
    # given: routed requests with their outcomes, nothing flushed
    for _ in range(MIN_EXAMPLES + 10):
        routed = operator_api.post(
            "/api/v1/route", {"data": {"type": "inference"}}, format="json"
        ).json()
        sid = routed["selected_services"][0]
        reported = operator_api.post(
            f"/api/v1/route/{routed['request_id']}/outcome",
            {"service_id": sid, "success": True, "latency_ms": 20.0},
            format="json",
        )
        assert reported.status_code == 200, reported.content

    # when
    result = retrain_gate()

    # then: every one of them was there to learn from
    assert result["trained"] is True, result
    assert result["examples"] == MIN_EXAMPLES + 10
