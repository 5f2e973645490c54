"""A job id is answered by the endpoint of the job kind that queued it, in every state: the
retrain status endpoint does not report a rebalance, nor the other way round (404 naming
task_id), whether the job is still queued or has finished."""

import uuid

import pytest
from celery.result import AsyncResult
from django.core.cache import caches

from moe_project.jobs import ISSUED_KEY
from routing.api import gate_views
from telemetry import api_views

pytestmark = pytest.mark.django_db

RETRAIN = "/api/v1/gate/retrain"
REBALANCE = "/api/v1/load/rebalance"
OTHER = {RETRAIN: REBALANCE, REBALANCE: RETRAIN}
# Looked up when a test runs: a task (a Celery proxy) among a test module's names would be
# evaluated by pytest's collection, binding every task before the eager fixture could set
# store_eager_result (other modules' eager tests would then read PENDING).
TASKS = {RETRAIN: lambda: gate_views.retrain_gate, REBALANCE: lambda: api_views.rebalance}


def queued(args=None, kwargs=None, task_id=None, **options) -> AsyncResult:
    """``apply_async`` on a broker that takes the job, with no worker to run it."""
    return AsyncResult(task_id or str(uuid.uuid4()))


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path):
    """Job heartbeats go to this test's directory."""
    settings.VAR_DIR = tmp_path


@pytest.fixture
def eager_celery(settings, monkeypatch):
    """Jobs run in-process and keep their results (tests/integration runs real workers)."""
    from moe_project.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(app.conf, "task_store_eager_result", True)
    # A task bound before this fixture ran keeps the value it was bound with.
    for task in TASKS.values():
        monkeypatch.setattr(task(), "store_eager_result", True)
    monkeypatch.setattr("routing.training.retrain_gate", lambda max_examples=None: {"ok": 1})
    monkeypatch.setattr("telemetry.services.rebalance_weights", lambda: {"ok": 1})
    return app


@pytest.fixture
def no_worker(monkeypatch):
    """A broker that takes every job, and no worker to run it."""
    for task in TASKS.values():
        monkeypatch.setattr(task(), "apply_async", queued)


def assert_unknown_here(response):
    assert response.status_code == 404, response.json()
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert list(error["fields"]) == ["task_id"]


@pytest.mark.parametrize("url", [RETRAIN, REBALANCE])
def test_a_job_is_answered_only_where_it_was_queued_in_every_state(
    operator_api, eager_celery, no_worker, url
):
    task = TASKS[url]()
    # given: a job of this kind, queued and not yet picked up
    task_id = operator_api.post(url).json()["task_id"]
    assert operator_api.get(f"{url}/{task_id}").json()["state"] == "PENDING"
    assert_unknown_here(operator_api.get(f"{OTHER[url]}/{task_id}"))

    # when: a worker runs it
    assert task.apply(kwargs={}, task_id=task_id).successful()

    # then: its own endpoint reports it; the other kind's still does not know it
    assert operator_api.get(f"{url}/{task_id}").json()["state"] == "SUCCESS"
    assert_unknown_here(operator_api.get(f"{OTHER[url]}/{task_id}"))


def test_a_finished_job_is_still_answered_once_the_cache_forgot_it(operator_api, eager_celery):
    # given: a finished job whose issued-id record is gone (a restarted embedded web process,
    # an evicted cache entry)
    task_id = operator_api.post(RETRAIN).json()["task_id"]
    caches["jobs"].delete(ISSUED_KEY.format(name="routing.retrain_gate", task_id=task_id))

    # then: its own endpoint still answers; the other still does not
    assert operator_api.get(f"{RETRAIN}/{task_id}").json()["state"] == "SUCCESS"
    assert_unknown_here(operator_api.get(f"{REBALANCE}/{task_id}"))


def test_a_finished_job_no_endpoint_queued_is_unknown(operator_api, eager_celery):
    # given: a rebalance that ran (as beat runs it every minute) but was not queued by the API
    task_id = str(uuid.uuid4())
    assert api_views.rebalance.apply(task_id=task_id).successful()
    assert AsyncResult(task_id).state == "SUCCESS"

    # then
    assert_unknown_here(operator_api.get(f"{REBALANCE}/{task_id}"))
