"""A retrain whose Celery worker is killed mid-job (SIGKILL to the worker's whole process group,
as ``kill -9`` or the OOM killer of a container would) says so at its status endpoint within
seconds, naming the worker, and health says degraded; a worker started again under the same
name does not hide it. A retrain a live worker runs is never said to be lost.

Real processes, started as ``.ci/serve`` starts them: uvicorn and
``celery -A moe_project worker`` (prefork, one child), with ``MOE_WORKER_LOST_SECONDS=3`` (a
worker stamps every 0.5 s). Their settings (``tests/integration/worker_lost_settings.py``) load
``tests/integration/slow_retrain.py`` into the worker: a retrain waits, STARTED, until the test
releases it; the application's code is unchanged.

Embedded-default pass: SQLite, the filesystem broker and stamps under a temporary ``var/``.
PostgreSQL + Redis pass: pytest-django's test database (the test is transactional, so the
servers see what is committed) and the pass's Redis database, the broker's keys under a prefix
of the test's own; an unreachable Redis fails the test under ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import scaleout_pass
from tests.integration.slow_retrain import RELEASE_FILE
from tests.integration.stack import (
    Api,
    CeleryWorker,
    Proc,
    WebServer,
    base_env,
    forget,
    manage,
    obtain_token,
    wait_until,
    with_path,
)
from tests.support.requirements import missing

# Transactional: in the PostgreSQL + Redis pass the servers use pytest-django's test database.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RETRAIN = "/api/v1/gate/retrain"
LOST_SECONDS = 3.0
EMBEDDED_SETUP = """
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo_fleet")
"""
# pytest-django's test database is migrated already.
SCALEOUT_SETUP = 'call_command("seed_demo_fleet")\n'


@dataclass
class Stack:
    """A web process and the workers a test starts, on one database, broker and var/."""

    root: Path
    env: dict[str, str]
    redis_url: str | None
    procs: list[Proc] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    api: Api | None = None

    def start_web(self) -> None:
        web = WebServer(f"lost-web-{secrets.token_hex(2)}", self.env, self.root)
        self.procs.append(web)
        web.wait_ready()
        self.api = Api(web.url, obtain_token(web.url))

    def worker(self, nodename: str) -> CeleryWorker:
        worker = CeleryWorker(
            f"lost-worker-{secrets.token_hex(2)}",
            self.env,
            self.root,
            ["--loglevel", "INFO", "--concurrency", "1", "-n", nodename],
        )
        self.procs.append(worker)
        worker.wait_ready()
        return worker

    def status(self, task_id: str) -> dict:
        return self.api.ok(self.api.get(f"{RETRAIN}/{task_id}"))

    def health(self) -> tuple[int, dict]:
        response = self.api.get("/api/v1/health")
        return response.status_code, response.json()

    def started(self, task_id: str) -> dict:
        body, _ = wait_until(
            lambda: (s := self.status(task_id))["state"] == "STARTED" and s,
            60.0,
            f"retrain {task_id} to be STARTED",
            interval=0.1,
        )
        return body

    def release_retrains(self) -> None:
        (Path(self.env["MOE_VAR_DIR"]) / RELEASE_FILE).touch()

    def stop(self) -> None:
        if self.api is not None:
            self.api.close()
        for proc in self.procs:
            proc.stop()
        forget(self.procs)


def _scaleout_env(tag: str) -> tuple[dict[str, str], str]:
    import redis
    from django.db import connection

    redis_url = os.environ["REDIS_URL"]
    try:
        redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {redis_url}: {exc}")
    database_url = with_path(os.environ["DATABASE_URL"], f"/{connection.settings_dict['NAME']}")
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MOE_TEST_BROKER_PREFIX=f"moe-test-{tag}:",
    )
    return env, redis_url


def _forget_redis_keys(redis_url: str, tag: str, task_ids: list[str]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"moe-test-{tag}:*", count=1000))
    keys += [f"celery-task-meta-{task_id}" for task_id in task_ids]
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    tag = secrets.token_hex(4)
    root = tmp_path / "lost"
    root.mkdir()
    redis_url = None
    if scaleout_pass():
        env, redis_url = _scaleout_env(tag)
        setup = SCALEOUT_SETUP
    else:
        env, setup = base_env(), EMBEDDED_SETUP
    env.update(
        MOE_VAR_DIR=str(root / "var"),
        DJANGO_SETTINGS_MODULE="tests.integration.worker_lost_settings",
        MOE_WORKER_LOST_SECONDS=str(LOST_SECONDS),
    )
    manage(env, setup, root, "setup-lost")
    found = Stack(root, env, redis_url)
    try:
        found.start_web()
        yield found
    finally:
        found.stop()
        if redis_url:
            _forget_redis_keys(redis_url, tag, found.task_ids)


def nodename(prefix: str) -> str:
    """A worker name of this test's own (``-n``), and what Celery expands it to."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    return f"{name}@{socket.gethostname()}"


def queue_retrain(stack: Stack) -> str:
    task_id = stack.api.ok(stack.api.post(RETRAIN), 202)["task_id"]
    stack.task_ids.append(task_id)
    return task_id


def test_a_job_whose_worker_died_says_so(stack):
    # given: a retrain STARTED by a worker, which is not said to be lost while it runs it
    node = nodename("doomed")
    worker = stack.worker(node)
    task_id = queue_retrain(stack)
    running = stack.started(task_id)
    assert "worker_lost" not in running, running

    # when: the worker's whole process group is killed, as the OOM killer would
    worker.kill()

    # then: within the threshold and a few polls, the job says its worker is lost ...
    body, took = wait_until(
        lambda: (s := stack.status(task_id)).get("worker_lost") and s,
        LOST_SECONDS + 10.0,
        "the job status to say its worker is lost",
        interval=0.2,
    )
    print(f"\nworker loss reported {took:.1f} s after the kill (threshold {LOST_SECONDS:g} s)")
    assert body["state"] == "STARTED", body
    assert body["worker"] == node
    assert body["worker_last_seen_s"] >= LOST_SECONDS
    detail = body["detail"]
    assert f"The worker that started this job ({node}) has stopped" in detail, detail
    if stack.redis_url:
        assert "visibility timeout (3600 s)" in detail, detail
    else:
        assert "never handed out again" in detail, detail
    assert "Queuing it again now" in detail and "safe" in detail, detail
    # ... and health says so (degraded: still usable, 200), naming the job and the worker
    status, health = stack.health()
    celery = health["checks"]["celery"]
    assert status == 200
    assert health["status"] == "degraded", health
    assert celery["status"] == "degraded", celery
    assert [job["task_id"] for job in celery["lost_jobs"]] == [task_id]
    assert celery["lost_jobs"][0]["worker"] == node
    assert task_id in celery["detail"] and node in celery["detail"]

    # when: a worker starts again under the same name (a container restarted after the kill)
    stack.worker(node)

    # then: its fresh stamps do not hide that the job's worker was lost
    again = stack.status(task_id)
    assert again["state"] == "STARTED"
    assert again["worker_lost"] is True, again
    assert f"({node}) has been started again since" in again["detail"], again
    assert stack.health()[1]["checks"]["celery"]["lost_jobs"][0]["worker_restarted"] is True


def test_a_job_a_live_worker_runs_is_never_said_lost(stack):
    # given: a retrain a live worker runs
    stack.worker(nodename("alive"))
    task_id = queue_retrain(stack)
    stack.started(task_id)

    # then: for three times the threshold, neither its status nor health says it is lost
    polls = 0
    deadline = time.monotonic() + 3 * LOST_SECONDS
    while time.monotonic() < deadline:
        body = stack.status(task_id)
        assert body["state"] == "STARTED" and "worker_lost" not in body, body
        celery = stack.health()[1]["checks"]["celery"]
        assert "lost_jobs" not in celery and celery["status"] != "degraded", celery
        polls += 1
        time.sleep(0.2)
    assert polls >= 5

    # when: the job is let go, it finishes as usual
    stack.release_retrains()
    done, _ = wait_until(
        lambda: (s := stack.status(task_id))["state"] == "SUCCESS" and s,
        30.0,
        f"retrain {task_id} to succeed",
        interval=0.2,
    )
    assert done["result"] == {"trained": False, "released": True}
    assert "worker_lost" not in done
    assert "lost_jobs" not in stack.health()[1]["checks"]["celery"]
