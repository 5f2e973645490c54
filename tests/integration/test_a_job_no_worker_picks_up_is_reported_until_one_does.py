"""With no Celery worker, a queued job and /api/v1/health say so; a worker without beat (the
README's plain ``celery -A moe_project worker``) makes Celery ``ok``; beat alone queues jobs that
no worker takes, and health says so again.

The embedded default (SQLite, kombu's filesystem broker, heartbeats under ``var/``), real
uvicorn, worker and beat processes started and stopped one at a time, as an operator would;
``MOE_JOB_PICKUP_SECONDS`` is 2 s (``tests/integration/quick_pickup_settings.py``).
"""

import pytest

from tests.integration.conftest import EMBEDDED_REASON, scaleout_pass
from tests.integration.stack import (
    BIN,
    Api,
    CeleryWorker,
    Proc,
    WebServer,
    base_env,
    forget,
    manage,
    obtain_token,
    start_all,
    wait_until,
)

pytestmark = pytest.mark.integration

SETUP = """
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo_fleet")
"""
RETRAIN = "/api/v1/gate/retrain"
REBALANCE = "/api/v1/load/rebalance"


class Processes:
    """The web process, and workers or beat started and stopped by the test."""

    def __init__(self, root, env):
        self.root, self.env = root, env
        self.procs: list[Proc] = []
        self.web = self.add(WebServer("pickup-web", env, root))

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def worker(self) -> CeleryWorker:
        worker = self.add(
            CeleryWorker("pickup-worker", self.env, self.root, ["--loglevel", "INFO", "-c", "1"])
        )
        worker.wait_ready()
        return worker

    def beat(self) -> Proc:
        args = [str(BIN / "celery"), "-A", "moe_project", "beat", "--loglevel", "INFO"]
        beat = self.add(Proc("pickup-beat", args, self.env, self.root, cwd=self.root))
        beat.wait_for_log("beat: Starting...", 90.0)
        return beat

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        forget(self.procs)


@pytest.fixture
def embedded(tmp_path_factory):
    if scaleout_pass():
        pytest.skip(EMBEDDED_REASON)
    root = tmp_path_factory.mktemp("moe-pickup")
    env = base_env(
        MOE_VAR_DIR=str(root / "var"),
        DJANGO_SETTINGS_MODULE="tests.integration.quick_pickup_settings",
    )
    manage(env, SETUP, root, "setup-pickup")
    processes = Processes(root, env)
    try:
        start_all([processes.web])
        api = Api(processes.web.url, obtain_token(processes.web.url))
        yield processes, api
        api.close()
    finally:
        processes.stop()


def health(api: Api) -> tuple[int, dict]:
    response = api.get("/api/v1/health")
    return response.status_code, response.json()


def finished(api: Api, url: str, task_id: str, timeout: float = 90.0) -> dict:
    body, _ = wait_until(
        lambda: (s := api.ok(api.get(f"{url}/{task_id}")))["state"] in ("SUCCESS", "FAILURE") and s,
        timeout,
        f"{url}/{task_id} to finish",
        interval=0.25,
    )
    return body


def assert_not_found_naming_task_id(response) -> None:
    assert response.status_code == 404, response.text
    assert list(response.json()["error"]["fields"]) == ["task_id"]


def test_a_job_no_worker_picks_up_is_reported_until_one_does(embedded):
    processes, api = embedded

    # given: no worker at all; a retrain is queued
    task_id = api.ok(api.post(RETRAIN), 202)["task_id"]
    queued = api.ok(api.get(f"{RETRAIN}/{task_id}"))
    assert queued["state"] == "PENDING"
    assert queued["queued_for_s"] >= 0

    # then: past the threshold the job says no worker has picked it up ...
    waiting, _ = wait_until(
        lambda: (s := api.ok(api.get(f"{RETRAIN}/{task_id}"))).get("detail") and s,
        20.0,
        "the job status to say no worker has picked it up",
        interval=0.25,
    )
    assert waiting["state"] == "PENDING"
    assert waiting["queued_for_s"] > 2.0
    assert "celery -A moe_project worker" in waiting["detail"]
    # ... health says no worker seems to consume the queue (degraded: still usable, 200) ...
    status, body = health(api)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["celery"]["status"] == "degraded", body["checks"]["celery"]
    assert "no Celery worker seems to be consuming the queue" in body["checks"]["celery"]["detail"]
    # ... and the rebalance endpoint does not know the retrain's id
    assert_not_found_naming_task_id(api.get(f"{REBALANCE}/{task_id}"))

    # when: a worker starts, without beat
    worker = processes.worker()

    # then: it runs the job, and health counts it
    done = finished(api, RETRAIN, task_id)
    assert done["state"] == "SUCCESS", done
    assert "detail" not in done
    rebalance_id = api.ok(api.post(REBALANCE), 202)["task_id"]
    assert finished(api, REBALANCE, rebalance_id)["state"] == "SUCCESS"
    status, body = health(api)
    celery = body["checks"]["celery"]
    assert (status, body["status"], celery["status"]) == (200, "ok", "ok"), body
    assert celery["last_job_age_s"] >= 0
    assert "beat" in celery["detail"]
    # a finished job is still answered only by its own endpoint
    assert_not_found_naming_task_id(api.get(f"{RETRAIN}/{rebalance_id}"))
    assert_not_found_naming_task_id(api.get(f"{REBALANCE}/{task_id}"))

    # when: the worker stops and beat alone queues its periodic jobs
    worker.stop()
    processes.beat()

    # then: health says again that no worker takes them
    body, took = wait_until(
        lambda: (b := health(api)[1])["checks"]["celery"]["status"] == "degraded" and b,
        45.0,
        "health to say beat's jobs are not picked up",
        interval=0.5,
    )
    print(f"\nbeat's unpicked jobs reported {took:.1f} s after beat started")
    assert body["status"] == "degraded"
    assert "celery -A moe_project worker" in body["checks"]["celery"]["detail"]
