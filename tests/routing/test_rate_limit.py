"""Per-client rate limits: counted in the shared cache; over the limit is a 429 error JSON."""

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_a_client_over_its_limit_gets_429_and_others_do_not(
    three_per_minute, client_api, operator_api, fleet
):
    statuses = [
        client_api.post("/api/v1/route", {"data": {}}, format="json").status_code for _ in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
    limited = client_api.post("/api/v1/route", {"data": {}}, format="json")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 0
    assert operator_api.post("/api/v1/route", {"data": {}}, format="json").status_code == 200


def test_a_forged_forwarded_for_header_does_not_buy_more_logins(three_per_minute, anon_api):
    # Without trusted proxies (MOE_NUM_PROXIES 0) the anonymous rate limit (the token endpoint,
    # i.e. password guesses) counts the connecting address, whatever X-Forwarded-For says.
    statuses = [
        anon_api.post(
            "/api/v1/auth/token/",
            {"username": "nobody", "password": "guess"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{i}",
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_health_probes_answer_over_http_when_everything_else_redirects(settings, client, db):
    # DJANGO_SECURE=true redirects http to https; a container or load-balancer probe talks
    # plain http to the process and must still get its answer.
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/api/v1/ping").status_code == 200
    assert client.get("/api/v1/health").status_code in (200, 503)
    assert client.get("/api/v1/metrics").status_code == 301


def test_a_cache_outage_is_logged_once_per_interval_not_per_request(caplog, monkeypatch):
    # While the shared cache is down the limit fails open; the log says so every
    # WARN_EVERY_S seconds with the count meanwhile, not once per request (600 lines in 20 s).
    from moe_project import throttling

    now = [1000.0]
    monkeypatch.setattr(throttling.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(throttling, "_warned", {"at": float("-inf"), "since": 0})
    with caplog.at_level("WARNING", logger="moe_project.throttling"):
        for _ in range(100):
            throttling._warn_unlimited(ConnectionError("refused"))
        now[0] += throttling.WARN_EVERY_S
        for _ in range(5):
            throttling._warn_unlimited(ConnectionError("refused"))

    messages = [m for m in map(logging.LogRecord.getMessage, caplog.records) if "not applied" in m]
    assert len(messages) == 2
    assert "(1 requests since" in messages[0] and "(100 requests since" in messages[1]
