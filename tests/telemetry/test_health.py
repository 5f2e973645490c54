"""GET /api/v1/health reports the database, Redis, Celery and the router."""

import time

import pytest

from telemetry.heartbeat import beat

pytestmark = pytest.mark.django_db


def test_health_is_public_and_reports_every_part(anon_api, settings):
    response = anon_api.get("/api/v1/health")

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["redis"]["status"] == ("ok" if settings.REDIS_URL else "not_configured")
    assert checks["router"]["status"] == "ok"
    assert checks["celery"]["status"] == "unknown"  # no job has run in this test


def test_a_recent_job_means_celery_is_ok(anon_api):
    beat("flush_history")

    assert anon_api.get("/api/v1/health").json()["checks"]["celery"]["status"] == "ok"


def test_a_stale_job_makes_health_degraded(anon_api, settings, monkeypatch):
    beat("flush_history")
    monkeypatch.setattr(time, "time", lambda: 10**10)

    body = anon_api.get("/api/v1/health").json()

    assert body["checks"]["celery"]["status"] == "stale"
    assert body["status"] == "degraded"
