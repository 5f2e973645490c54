"""docker/entrypoint.sh, executed here: it waits for the database, migrates when asked, and
hands each role to its program (uvicorn and celery replaced by a stub that prints its
arguments and the environment it got)."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port

pytestmark = pytest.mark.integration  # real subprocesses, a real migration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "entrypoint.sh"
STUB = """#!/bin/sh
echo "ARGS $*"
echo "MULTIPROC ${PROMETHEUS_MULTIPROC_DIR:-none}"
"""


@pytest.fixture
def run(tmp_path):
    stub = tmp_path / "stub"
    stub.write_text(STUB)
    stub.chmod(0o755)

    def run_entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess:
        full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        full.update(
            MOE_VAR_DIR=str(tmp_path / "var"),
            MOE_PYTHON=sys.executable,
            MOE_UVICORN=str(stub),
            MOE_CELERY=str(stub),
            TMPDIR=str(tmp_path),
        )
        full.update(env)
        return subprocess.run(
            [str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=300
        )

    return run_entrypoint


def _tables(var_dir: Path) -> set[str]:
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrate_creates_the_schema_and_exits(run, tmp_path):
    done = run("migrate")

    assert done.returncode == 0, done.stderr
    assert {"registry_service", "django_celery_beat_periodictask"} <= _tables(tmp_path / "var")


def test_web_migrates_when_asked_then_serves_with_a_metrics_dir_for_several_workers(run, tmp_path):
    done = run("web", "--log-level", "warning", MOE_MIGRATE="1", MOE_WEB_WORKERS="2", MOE_PORT="9")

    assert done.returncode == 0, done.stderr
    assert "registry_service" in _tables(tmp_path / "var")
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["ARGS"] == (
        "moe_project.asgi:application --host 0.0.0.0 --port 9 --workers 2 --no-access-log "
        "--lifespan off --no-proxy-headers --log-level warning"
    )
    multiproc = Path(lines["MULTIPROC"])
    assert multiproc.is_dir() and multiproc.parent == tmp_path


def test_web_with_one_worker_neither_migrates_unasked_nor_sets_a_metrics_dir(run, tmp_path):
    done = run("web")

    assert done.returncode == 0, done.stderr
    assert "registry_service" not in _tables(tmp_path / "var")
    assert "--workers 1 " in done.stdout and "MULTIPROC none" in done.stdout


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("worker", "ARGS -A moe_project worker --loglevel INFO --concurrency 2"),
        ("beat", "ARGS -A moe_project beat --loglevel INFO --pidfile /tmp/celerybeat.pid"),
    ],
)
def test_worker_and_beat_run_celery(run, role, expected):
    done = run(role)

    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_any_other_command_runs_as_given(run):
    done = run("sh", "-c", "echo hello from $0", "the-image")

    assert done.returncode == 0 and done.stdout.strip() == "hello from the-image"


def test_an_unreachable_database_stops_the_start_after_the_wait(run):
    url = f"postgres://nobody@127.0.0.1:{free_port()}/nothing"

    done = run("web", DATABASE_URL=url, MOE_DB_WAIT_SECONDS="1")

    assert done.returncode != 0
    assert "the database is not reachable" in done.stderr
    assert "ARGS" not in done.stdout  # uvicorn never started
