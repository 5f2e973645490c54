"""POST /api/v1/gate/retrain queues a retraining in Celery; GET .../retrain/<id> follows it."""

import pytest
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from routing.api import gate_views
from telemetry import heartbeat

pytestmark = pytest.mark.django_db

URL = "/api/v1/gate/retrain"


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path):
    """Job heartbeats go to this test's directory."""
    settings.VAR_DIR = tmp_path


def test_an_operator_queues_a_retrain_and_the_job_runs(operator_api, eager_celery):
    # when: no body at all (the body is optional)
    response = operator_api.post(URL)

    # then: 202 with a task id, and the job ran (no history yet: nothing to learn from)
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "PENDING"
    assert body["status_url"] == f"retrain/{body['task_id']}"
    status = operator_api.get(f"{URL}/{body['task_id']}").json()
    assert status["state"] == "SUCCESS"
    assert status["result"]["trained"] is False


def test_max_examples_reaches_the_job(operator_api, eager_celery, monkeypatch):
    # given: training that reports what it was asked for
    monkeypatch.setattr(
        "routing.training.retrain_gate",
        lambda max_examples=None: {"trained": False, "asked_for": max_examples},
    )

    # when
    task_id = operator_api.post(URL, {"max_examples": 500}, format="json").json()["task_id"]

    # then
    status = operator_api.get(f"{URL}/{task_id}").json()
    assert status["result"] == {"trained": False, "asked_for": 500}


def test_an_api_client_may_not_retrain(client_api):
    response = client_api.post(URL, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_anonymous_callers_must_authenticate(anon_api):
    response = anon_api.post(URL, {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("value", [49, 100_001, "500", 500.5, True, None])
def test_a_bad_max_examples_is_a_400_naming_the_field(operator_api, value):
    response = operator_api.post(URL, {"max_examples": value}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["max_examples"]


def test_an_unknown_field_is_a_400_naming_it(operator_api):
    response = operator_api.post(URL, {"max_exmaples": 500}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["max_exmaples"]


def test_a_broker_that_is_down_is_a_503_not_a_500(operator_api, monkeypatch):
    # given: queuing fails as it does when the broker cannot be reached
    def unreachable(**kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(gate_views.retrain_gate, "apply_async", unreachable)

    # when
    response = operator_api.post(URL, {}, format="json")

    # then: and no job is left waiting for a worker in the health check's eyes
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert heartbeat.waiting_since() is None


def test_a_malformed_task_id_is_a_400_naming_it(operator_api):
    response = operator_api.get(f"{URL}/not;a;task;id")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["task_id"]


def test_a_task_id_with_a_slash_matches_no_route(operator_api):
    response = operator_api.get(f"{URL}/abc/def")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_job_status_is_for_operators_only(client_api, anon_api):
    task_id = "0b6a1c2e-8f4e-4a55-9d0c-4b7f3a1e2d3c"

    assert client_api.get(f"{URL}/{task_id}").status_code == 403
    assert anon_api.get(f"{URL}/{task_id}").status_code == 401


@pytest.mark.parametrize("url", [URL, "/api/v1/load/rebalance"])
def test_a_job_id_never_issued_is_a_404_not_pending_for_ever(operator_api, eager_celery, url):
    # given: a job that was queued (its id is known) and one that never was
    issued = operator_api.post(url).json()["task_id"]

    # when
    known = operator_api.get(f"{url}/{issued}")
    unknown = operator_api.get(f"{url}/0123456789abcdef")

    # then: Celery alone would answer PENDING for the second, and a client would poll for ever
    assert known.status_code == 200
    assert known.json()["state"] == "SUCCESS"
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["code"] == "not_found"
    assert list(error["fields"]) == ["task_id"]


def test_a_queued_job_not_yet_started_is_pending(operator_api, monkeypatch):
    # given: a broker that takes the job, and no worker to run it
    monkeypatch.setattr(
        gate_views.retrain_gate, "apply_async", lambda kwargs, task_id: AsyncResult(task_id)
    )

    # when
    task_id = operator_api.post(URL).json()["task_id"]

    # then: its id was issued here, so it is PENDING, not unknown
    status = operator_api.get(f"{URL}/{task_id}")
    assert status.status_code == 200
    assert status.json()["state"] == "PENDING"
