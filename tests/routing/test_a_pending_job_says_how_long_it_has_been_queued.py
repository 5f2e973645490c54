"""A PENDING job's status says how long it has been queued and, once that is longer than
MOE_JOB_PICKUP_SECONDS with no worker having taken a job since, that no worker picked it up."""

import time
import uuid

import pytest
from celery import signals
from celery.result import AsyncResult

import telemetry.tasks  # noqa: F401 - as in a worker: the tasks connect the heartbeats
from routing.api import gate_views

pytestmark = pytest.mark.django_db

URL = "/api/v1/gate/retrain"
PICKUP_SECONDS = 5.0


def queued(args=None, kwargs=None, task_id=None, **options) -> AsyncResult:
    """``apply_async`` on a broker that takes the job, with no worker to run it."""
    return AsyncResult(task_id or str(uuid.uuid4()))


@pytest.fixture(autouse=True)
def no_worker(settings, tmp_path, monkeypatch):
    """A broker that takes every job, no worker to run it, heartbeats in this test's directory."""
    settings.VAR_DIR = tmp_path
    settings.MOE_JOB_PICKUP_SECONDS = PICKUP_SECONDS
    monkeypatch.setattr(
        gate_views.retrain_gate,
        "apply_async",
        queued,
    )


class Clock:
    """time.time from now on, moved by hand."""

    def __init__(self, monkeypatch):
        self.now = time.time()
        monkeypatch.setattr(time, "time", lambda: self.now)


def worker_takes_a_job():
    signals.task_received.send(sender=None, request=None)


def test_a_pending_job_says_how_long_it_has_been_queued(operator_api, monkeypatch):
    clock = Clock(monkeypatch)
    task_id = operator_api.post(URL).json()["task_id"]

    clock.now += 2.0
    body = operator_api.get(f"{URL}/{task_id}").json()

    assert body == {"task_id": task_id, "state": "PENDING", "queued_for_s": 2.0}


def test_past_the_threshold_it_says_no_worker_has_picked_it_up(operator_api, monkeypatch):
    clock = Clock(monkeypatch)
    task_id = operator_api.post(URL).json()["task_id"]

    clock.now += PICKUP_SECONDS + 1
    body = operator_api.get(f"{URL}/{task_id}").json()

    assert body["state"] == "PENDING"
    assert body["queued_for_s"] == PICKUP_SECONDS + 1
    assert body["detail"].startswith("Not picked up")
    assert "celery -A moe_project worker" in body["detail"]


def test_no_hint_once_a_worker_has_taken_a_job_since(operator_api, monkeypatch):
    # given: a job a worker took (a long retrain answers PENDING while it runs), then another
    # job queued behind it
    clock = Clock(monkeypatch)
    running = operator_api.post(URL).json()["task_id"]
    clock.now += 1.0
    worker_takes_a_job()
    clock.now += 1.0
    behind = operator_api.post(URL).json()["task_id"]

    # when: both are PENDING past the threshold
    clock.now += PICKUP_SECONDS + 1
    running_body = operator_api.get(f"{URL}/{running}").json()
    behind_body = operator_api.get(f"{URL}/{behind}").json()

    # then: only the one no worker has picked up is said to be waiting for one
    assert running_body["queued_for_s"] == PICKUP_SECONDS + 3
    assert "detail" not in running_body
    assert behind_body["queued_for_s"] == PICKUP_SECONDS + 1
    assert "celery -A moe_project worker" in behind_body["detail"]


def test_a_job_queued_before_a_restart_is_still_answered_after_it(operator_api, settings):
    # The embedded default keeps its cache in the process's memory; a restart loses it, while
    # the job waits on in the filesystem broker. Its id must still be known afterwards.
    from django.core.cache import caches

    task_id = operator_api.post(URL).json()["task_id"]
    if not settings.REDIS_URL:  # (with Redis, the cache outlives the process anyway)
        caches["default"].clear()  # what a restart does to the process's memory

    answer = operator_api.get(f"{URL}/{task_id}")

    assert answer.status_code == 200, answer.content
    assert answer.json()["state"] == "PENDING"
    assert "queued_for_s" in answer.json()
