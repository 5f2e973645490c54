"""GET /api/v1/health says ``degraded`` while a job queued through the API was STARTED by a worker
that has stopped stamping (or started again since), and stops saying so once the broker would
have handed the job out again; a job that ends leaves no record behind.

Stamps and records are written as a worker writes them (the heartbeat functions and the Celery
signals they connect), in whichever store the pass configures (files under ``var/``, or Redis);
tests/integration/test_a_job_whose_worker_died_says_so.py kills a real worker.
"""

import json
import time
import uuid

import pytest
from celery import signals

import telemetry.tasks  # noqa: F401 - as in a worker: the tasks connect the heartbeats
from moe_project.jobs import _id_prefix
from routing.tasks import retrain_gate
from telemetry import heartbeat
from telemetry.tasks import rebalance

pytestmark = pytest.mark.django_db

NODE = "celery@worker-1"


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MOE_WORKER_LOST_SECONDS = 30.0


def stamp(node: str, boot: str, age_s: float = 0.0) -> None:
    """The worker ``node`` (started as ``boot``) stamped ``age_s`` seconds ago."""
    from django.conf import settings

    heartbeat.beat_worker(node, boot)
    if age_s and settings.REDIS_URL:
        key = heartbeat.KEY + heartbeat.WORKER + node
        heartbeat._redis().pexpire(key, int(heartbeat.WORKER_STAMP_TTL_MS - age_s * 1000))
    elif age_s:
        path = heartbeat._worker_path(node)
        value = json.loads(path.read_text())
        value["at"] -= age_s
        path.write_text(json.dumps(value))


def api_job_id() -> str:
    return f"{_id_prefix(retrain_gate)}{uuid.uuid4()}"


def celery_check(anon_api) -> dict:
    response = anon_api.get("/api/v1/health")
    assert response.status_code == 200
    return response.json()


def test_a_job_whose_worker_stopped_stamping_makes_health_degraded(anon_api):
    # given: a retrain started by a worker last seen 45 s ago (threshold 30 s)
    task_id = api_job_id()
    heartbeat.job_started(task_id, "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)

    # when
    body = celery_check(anon_api)
    celery = body["checks"]["celery"]

    # then: degraded, naming the job and the worker
    assert body["status"] == "degraded"
    assert celery["status"] == "degraded"
    [lost] = celery["lost_jobs"]
    assert lost["task_id"] == task_id and lost["worker"] == NODE
    assert 44.0 <= lost["worker_last_seen_s"] <= 50.0
    assert lost["worker_restarted"] is False
    assert task_id in celery["detail"] and NODE in celery["detail"]


def test_a_job_a_live_worker_runs_leaves_health_alone(anon_api):
    heartbeat.job_started(api_job_id(), "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=5.0)

    celery = celery_check(anon_api)["checks"]["celery"]

    assert "lost_jobs" not in celery
    assert celery["status"] != "degraded"


def test_a_worker_started_again_under_the_same_name_does_not_hide_the_loss(anon_api):
    # given: the job's worker was killed and started again (a container's restart policy)
    task_id = api_job_id()
    heartbeat.job_started(task_id, "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-2")

    # then
    celery = celery_check(anon_api)["checks"]["celery"]
    assert celery["status"] == "degraded"
    assert celery["lost_jobs"][0]["worker_restarted"] is True
    assert "started again" in celery["detail"]
    assert heartbeat.job_worker_lost(task_id, NODE).restarted is True


def test_a_lost_job_is_reported_until_the_broker_would_have_handed_it_out_again(
    anon_api, monkeypatch
):
    # given: a job whose worker was lost
    task_id = api_job_id()
    heartbeat.job_started(task_id, "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)
    started = time.time()

    # when: more than the broker's redelivery time (an hour here) later, then a day later
    monkeypatch.setattr(time, "time", lambda: started + 3700)
    an_hour_on = celery_check(anon_api)["checks"]["celery"]
    assert heartbeat.running_job(task_id) is not None
    monkeypatch.setattr(time, "time", lambda: started + 2 * 24 * 3600)
    celery_check(anon_api)

    # then: no longer reported; once its result has expired, the record is forgotten
    assert "lost_jobs" not in an_hour_on
    assert heartbeat.running_job(task_id) is None


def test_a_later_success_of_the_same_job_clears_the_loss_from_health(anon_api):
    # given: a retrain lost with its worker, and a rebalance lost the same way
    lost_retrain, lost_rebalance = api_job_id(), f"{_id_prefix(rebalance)}{uuid.uuid4()}"
    heartbeat.job_started(lost_retrain, retrain_gate.name, NODE, "boot-1")
    heartbeat.job_started(lost_rebalance, rebalance.name, NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)
    # ... and a retrain that failed since: nothing is done yet
    signals.task_postrun.send(
        sender=retrain_gate, task_id=api_job_id(), task=retrain_gate, state="FAILURE"
    )
    assert {j["task_id"] for j in celery_check(anon_api)["checks"]["celery"]["lost_jobs"]} == {
        lost_retrain,
        lost_rebalance,
    }

    # when: the operator queues the retrain again and it succeeds (on another worker)
    signals.task_postrun.send(
        sender=retrain_gate, task_id=api_job_id(), task=retrain_gate, state="SUCCESS"
    )

    # then: only the rebalance is still to be done
    [still] = celery_check(anon_api)["checks"]["celery"]["lost_jobs"]
    assert still["task_id"] == lost_rebalance
    # (the lost job's own status still says its worker was lost: that stays true)
    assert heartbeat.job_worker_lost(lost_retrain, NODE) is not None


def test_a_success_from_before_the_lost_job_started_does_not_clear_it(anon_api, monkeypatch):
    started = time.time()
    monkeypatch.setattr(time, "time", lambda: started - 600)
    signals.task_postrun.send(
        sender=retrain_gate, task_id=api_job_id(), task=retrain_gate, state="SUCCESS"
    )
    monkeypatch.undo()
    task_id = api_job_id()
    heartbeat.job_started(task_id, retrain_gate.name, NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)

    [lost] = celery_check(anon_api)["checks"]["celery"]["lost_jobs"]
    assert lost["task_id"] == task_id


def test_a_job_a_worker_runs_is_recorded_until_it_ends(monkeypatch):
    # given: this process is a worker (its bootstep ran), running an API job and a beat job
    monkeypatch.setattr(heartbeat, "_this_worker", (NODE, "boot-1"))
    task_id, beat_job = api_job_id(), str(uuid.uuid4())

    # when: both start
    for job in (task_id, beat_job):
        signals.task_prerun.send(sender=retrain_gate, task_id=job, task=retrain_gate)

    # then: only the API job is recorded, with its worker
    record = heartbeat.running_job(task_id)
    assert (record["node"], record["boot"], record["task"]) == (NODE, "boot-1", retrain_gate.name)
    assert heartbeat.running_job(beat_job) is None

    # when: it ends
    signals.task_postrun.send(sender=retrain_gate, task_id=task_id, task=retrain_gate)

    # then
    assert heartbeat.running_job(task_id) is None


def test_nothing_is_said_of_a_worker_never_seen_with_no_record_of_the_job():
    # A worker of a version that does not stamp: it cannot be told lost.
    assert heartbeat.job_worker_lost(api_job_id(), "celery@old-version") is None


def test_a_worker_that_stamps_less_often_is_judged_by_its_own_threshold(anon_api, settings):
    # given: a worker configured with MOE_WORKER_LOST_SECONDS=120 (it stamps every 20 s), last
    # seen 45 s ago, read by a web process configured with 30 s
    settings.MOE_WORKER_LOST_SECONDS = 120.0
    task_id = api_job_id()
    heartbeat.job_started(task_id, "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)
    settings.MOE_WORKER_LOST_SECONDS = 30.0

    # then: not lost (between two of its stamps), in health and in the job's own status
    body = celery_check(anon_api)
    assert "lost_jobs" not in body["checks"]["celery"]
    assert heartbeat.job_worker_lost(task_id, NODE) is None

    # and past its own threshold it is lost
    settings.MOE_WORKER_LOST_SECONDS = 120.0
    stamp(NODE, "boot-1", age_s=130.0)
    settings.MOE_WORKER_LOST_SECONDS = 30.0
    [lost] = celery_check(anon_api)["checks"]["celery"]["lost_jobs"]
    assert lost["task_id"] == task_id and lost["worker_last_seen_s"] >= 129.0


def test_a_reader_with_a_longer_threshold_keeps_it(anon_api, settings):
    # given: a worker stamping on a 30-s threshold, last seen 45 s ago; the reader waits 60 s
    task_id = api_job_id()
    heartbeat.job_started(task_id, "routing.retrain_gate", NODE, "boot-1")
    stamp(NODE, "boot-1", age_s=45.0)
    settings.MOE_WORKER_LOST_SECONDS = 60.0

    assert "lost_jobs" not in celery_check(anon_api)["checks"]["celery"]
