"""GET /api/v1/health counts every job that ran, and says when queued jobs wait with no worker.

Stamps are written as the worker and the API write them (heartbeat functions and the Celery
signals they connect); tests/integration runs the same with real processes.
"""

import time

import pytest
from celery import signals

import telemetry.tasks  # noqa: F401 - as in a worker: the tasks connect the heartbeats
from telemetry import heartbeat

pytestmark = pytest.mark.django_db


def celery_check(anon_api) -> tuple[int, dict, dict]:
    response = anon_api.get("/api/v1/health")
    body = response.json()
    return response.status_code, body, body["checks"]["celery"]


def test_a_job_run_by_a_worker_without_beat_means_celery_is_ok(anon_api):
    # given: a worker with no beat ran an API job (a rebalance), never the flush job
    signals.task_postrun.send(sender=None, task_id="t1", task=None, state="SUCCESS")

    # when
    status, body, celery = celery_check(anon_api)

    # then: ok, with the job's age, and a word about beat
    assert status == 200
    assert celery["status"] == "ok"
    assert celery["last_job_age_s"] >= 0
    assert "beat" in celery["detail"]
    assert body["status"] == "ok"


def test_a_job_that_waits_past_the_threshold_with_no_worker_makes_health_degraded(
    anon_api, settings, monkeypatch
):
    # given: a job was queued and no worker has taken any job since
    settings.MOE_JOB_PICKUP_SECONDS = 5.0
    assert heartbeat.mark_waiting()
    queued = heartbeat.waiting_since()

    # when: before the threshold, then after it
    _, before_body, before = celery_check(anon_api)
    monkeypatch.setattr(time, "time", lambda: queued + 6.0)
    status, body, celery = celery_check(anon_api)

    # then: unknown (no job ran yet) while it may still be picked up; then degraded, usable (200)
    assert before["status"] == "unknown"
    assert before_body["status"] == "ok"
    assert before["waiting_job_age_s"] >= 0
    assert status == 200
    assert body["status"] == "degraded"
    assert celery["status"] == "degraded"
    assert celery["waiting_job_age_s"] == 6.0
    assert "no Celery worker seems to be consuming the queue" in celery["detail"]
    assert "celery -A moe_project worker" in celery["detail"]


def test_the_wait_is_over_once_a_worker_takes_a_job(anon_api, settings, monkeypatch):
    # given: a job has waited past the threshold
    settings.MOE_JOB_PICKUP_SECONDS = 5.0
    heartbeat.mark_waiting()
    queued = heartbeat.waiting_since()
    monkeypatch.setattr(time, "time", lambda: queued + 6.0)
    assert celery_check(anon_api)[2]["status"] == "degraded"

    # when: a worker takes a job from the queue and runs it
    signals.task_received.send(sender=None, request=None)
    signals.task_postrun.send(sender=None, task_id="t1", task=None, state="SUCCESS")

    # then
    _, body, celery = celery_check(anon_api)
    assert celery["status"] == "ok"
    assert "waiting_job_age_s" not in celery
    assert body["status"] == "ok"


def test_a_later_job_does_not_hide_how_long_the_first_has_waited(settings, monkeypatch):
    # given: one job queued, and another one later, with no worker in between
    heartbeat.mark_waiting()
    first = heartbeat.waiting_since()
    monkeypatch.setattr(time, "time", lambda: first + 30.0)

    # when
    set_again = heartbeat.mark_waiting()

    # then: the mark still says when the first was queued
    assert set_again is False
    assert heartbeat.waiting_since() == first


def test_a_stale_flush_job_says_what_to_check(anon_api, monkeypatch):
    # given: beat's flush job ran long ago, and other jobs too
    heartbeat.beat("flush_history")
    heartbeat.beat(heartbeat.JOB_RAN)
    monkeypatch.setattr(time, "time", lambda: 10**10)

    # when
    _, body, celery = celery_check(anon_api)

    # then: the status it always had, and what to look at
    assert celery["status"] == "stale"
    assert "beat" in celery["detail"]
    assert body["status"] == "degraded"


def test_queuing_a_job_gives_up_on_an_unreachable_result_backend_within_seconds(settings):
    # Celery's default (20 tries, 1 s apart) held a retrain/rebalance request ~19 s while
    # Redis was down before its 503; the configured policy waits at most a few seconds.
    from moe_project.celery import app

    if not settings.REDIS_URL:
        pytest.skip("the Redis result backend: the PostgreSQL + Redis pass")
    policy = app.backend.retry_policy
    waits = [
        min(policy["interval_start"] + i * policy["interval_step"], policy["interval_max"])
        for i in range(policy["max_retries"])
    ]
    assert sum(waits) <= 5.0, policy
