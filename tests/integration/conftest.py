"""Integration fixtures: the real PostgreSQL, Redis, Celery worker and uvicorn processes.

The servers run as subprocesses, so they cannot see pytest-django's test database. Fixtures of
package scope (everything stops after the last integration test) make a scratch PostgreSQL
database (``moe_it_<pid>_<random>``, dropped at the end), migrate and seed it in a subprocess,
claim a Redis database number (11-15: only an empty one, marked with an owner key, emptied at
the end) and a temporary ``MOE_VAR_DIR``.

Which pass runs what (``.ci/test`` runs the suite twice): the multi-process scale-out tests run
only when the pytest process has ``REDIS_URL`` (the PostgreSQL + Redis pass), the embedded-default
test only when it has not. Neither depends on the pytest process's own settings otherwise: every
server gets an environment built here. PostgreSQL and Redis come from ``TEST_POSTGRES_URL`` and
``TEST_REDIS_URL``; when unreachable the tests are skipped, or fail under ``CI=true``.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from tests.integration.stack import (
    Api,
    CeleryWorker,
    WebServer,
    base_env,
    forget,
    log_tails,
    manage,
    obtain_token,
    start_all,
    with_path,
)
from tests.support.requirements import missing

DEFAULT_POSTGRES_URL = "postgres://root@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SCALEOUT_REASON = "runs in the PostgreSQL + Redis pass"
EMBEDDED_REASON = "runs in the embedded-default pass"
REDIS_DBS = range(11, 16)
REDIS_LOCK_KEY = "moe-it:owner"

SETUP_CODE = """
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo_fleet")
"""


def scaleout_pass() -> bool:
    return bool(os.environ.get("REDIS_URL"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of every server log to a failing integration test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.get_closest_marker("integration"):
        tails = log_tails()
        if tails:
            report.sections.append(("server logs (tail)", tails))


@pytest.fixture(scope="session", autouse=True)
def quiet_http_client_logs() -> None:
    """Django's LOGGING sets the root logger to INFO: one httpx line per request is noise."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"{os.getpid()}_{secrets.token_hex(3)}"


@pytest.fixture(scope="package")
def postgres_admin_url() -> str:
    if not scaleout_pass():
        pytest.skip(SCALEOUT_REASON)
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        missing(f"PostgreSQL not reachable at {url}: {exc}")
    return url


@pytest.fixture(scope="package")
def redis_admin_url() -> str:
    if not scaleout_pass():
        pytest.skip(SCALEOUT_REASON)
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {url}: {exc}")
    return url


@pytest.fixture(scope="package")
def scratch_database(postgres_admin_url, run_id) -> Iterator[str]:
    name = f"moe_it_{run_id}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_path(postgres_admin_url, f"/{name}")
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def scratch_redis(redis_admin_url, run_id) -> Iterator[str]:
    """An empty Redis database number for the run, emptied again at the end.

    A database counts as free only when nothing else is in it: the owner key is set first
    (SET NX), and given back when anything else is found there (another run, another tool).
    """
    for db in REDIS_DBS:
        url = with_path(redis_admin_url, f"/{db}")
        client = redis.Redis.from_url(url)
        if client.set(REDIS_LOCK_KEY, run_id, nx=True, ex=3600):
            if client.dbsize() == 1:
                break
            client.delete(REDIS_LOCK_KEY)
        client.close()
    else:
        missing(f"no empty Redis database among {REDIS_DBS.start}-{REDIS_DBS.stop - 1}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="package")
def it_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("moe-it")


@dataclass
class ScaleOut:
    """The scratch PostgreSQL database and Redis db, migrated and seeded."""

    database_url: str
    redis_url: str
    var_dir: Path
    log_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            MOE_VAR_DIR=str(self.var_dir),
            **extra,
        )

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)


@pytest.fixture(scope="package")
def scaleout(scratch_database, scratch_redis, it_dir) -> ScaleOut:
    var_dir = it_dir / "var"
    var_dir.mkdir()
    stack = ScaleOut(scratch_database, scratch_redis, var_dir, it_dir)
    manage(stack.env(), SETUP_CODE, it_dir, "setup-scaleout")
    return stack


@dataclass
class Cluster:
    """Two web workers (A, B) and a Celery worker on the same PostgreSQL and Redis."""

    scaleout: ScaleOut
    web_a: WebServer
    web_b: WebServer
    worker: CeleryWorker
    token: str
    a: Api = field(init=False)
    b: Api = field(init=False)

    def __post_init__(self) -> None:
        self.a = Api(self.web_a.url, self.token)
        self.b = Api(self.web_b.url, self.token)
        from celery import Celery

        # Not the current app: the suite's other tests send tasks through moe_project's app.
        self.celery = Celery("moe-it", broker=self.scaleout.redis_url, set_as_current=False)
        self.celery.conf.update(
            result_backend=self.scaleout.redis_url,
            task_serializer="json",
            accept_content=["json"],
            result_serializer="json",
            broker_connection_retry_on_startup=True,
        )

    def run_task(self, name: str, timeout: float = 90.0, **kwargs) -> dict:
        """Send a task to the real Celery worker and wait for its result.

        An earlier AsyncResult caught in a reference cycle and collected while the Redis
        result backend subscribes for this one unsubscribes on the same PubSub connection from
        ``__del__`` and hangs (seen in CI). Cycles are collected here, before sending, and the
        collector is paused until the result is in."""
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self.celery.send_task(name, kwargs=kwargs).get(timeout=timeout)
        finally:
            if was_enabled:
                gc.enable()

    def close(self) -> None:
        self.a.close()
        self.b.close()
        self.celery.close()


@pytest.fixture(scope="package")
def cluster(scaleout: ScaleOut) -> Iterator[Cluster]:
    env = scaleout.env()
    web_a = WebServer("web-a", env, scaleout.log_dir)
    web_b = WebServer("web-b", env, scaleout.log_dir)
    worker = CeleryWorker(
        "celery-worker",
        env,
        scaleout.log_dir,
        ["--pool", "solo", "--loglevel", "INFO", "-n", f"it-{os.getpid()}@%h"],
    )
    procs = [web_a, web_b, worker]
    try:
        start_all(procs)
        found = Cluster(scaleout, web_a, web_b, worker, obtain_token(web_a.url))
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    try:
        yield found
    finally:
        found.close()
        for proc in procs:
            proc.stop()
        forget(procs)


@pytest.fixture
def uid() -> str:
    """A short unique tag, so a test's services and capabilities are its own."""
    return f"{secrets.token_hex(3)}{int(time.time() * 1000) % 1000:03d}"
