"""With "forward": true the router calls the chosen service and fails over along the selection."""

import pytest

from registry.services import register_service
from routing.history import flush_history
from routing.models import RoutingDecision
from tests.backends import Backend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backends():
    started = [Backend("alpha"), Backend("beta")]
    for backend in started:
        register_service(
            {
                "service_id": backend.name,
                "service_type": "inference",
                "endpoint": backend.url,
                "capabilities": ["inference"],
                "max_capacity": 10,
            }
        )
    yield {b.name: b for b in started}
    for backend in started:
        backend.close()


def test_forwarded_request_reaches_the_service_and_records_the_outcome(client_api, backends):
    response = client_api.post(
        "/api/v1/route",
        {"data": {"type": "inference", "data": {"prompt": "hi"}}, "forward": True},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    chosen = body["selected_services"][0]
    assert body["forwarded"]["service_id"] == chosen
    assert body["forwarded"]["status_code"] == 200
    assert body["forwarded"]["body"] == {"service": chosen, "echo": {"prompt": "hi"}}
    assert backends[chosen].received == [{"prompt": "hi"}]
    flush_history()
    row = RoutingDecision.objects.get(request_id=body["request_id"])
    assert row.success is True
    assert row.status_code == 200
    assert row.latency_ms > 0


def test_a_failing_first_choice_fails_over_only_when_nothing_was_sent(client_api, backends):
    # A 503 to a POST may have run: it is not sent again (issue 10's failure rules).
    backends["alpha"].status = 503
    backends["beta"].status = 503

    response = client_api.post(
        "/api/v1/route",
        {"data": {"data": 1}, "forward": True, "routing_strategy": "top_k", "top_k": 2},
        format="json",
    )
    assert response.status_code == 502
    attempts = response.json()["error"]["fields"]["attempts"]
    assert len(attempts) == 1 and attempts[0]["status_code"] == 503

    # A refused connection sent nothing: the next service gets the request.
    first = attempts[0]["service_id"]
    other = ({"alpha", "beta"} - {first}).pop()
    backends[first].close()
    backends[other].status = 200
    response = client_api.post(
        "/api/v1/route",
        {"data": {"data": 2}, "forward": True, "routing_strategy": "top_k", "top_k": 2},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["forwarded"]["service_id"] == other


def test_an_unreachable_service_is_a_502_not_a_500(client_api, backends):
    backends["alpha"].close()
    backends["beta"].close()

    response = client_api.post("/api/v1/route", {"data": {}, "forward": True}, format="json")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_failed"


def test_a_name_that_now_resolves_to_a_metadata_address_is_not_contacted(monkeypatch):
    # DNS cannot be re-pointed on this machine, so the resolver answer is substituted here.
    import socket

    from routing import forwarding

    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        # Only the made-up name is answered; nothing connects to the answer.
        if host == "innocent.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    forwarding._resolved.clear()

    reason = forwarding._forbidden_reason("http://innocent.example:8080/")

    assert reason and "metadata" in reason
    forwarding._resolved.clear()
