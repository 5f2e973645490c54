"""The flush benchmark's output contract (figures are not checked: timing is never asserted).
It checks its own flush (every decision once, as recorded, with its outcome) and says so."""

import json
import os
import subprocess
import sys

import pytest

from tests.support.requirements import missing


def _run(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.performance.bench_flush", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.config_independent
def test_a_short_run_on_the_embedded_default_prints_decisions_per_second():
    result = _run("--batches", "2", "--items", "30", "--paths", "auto,generic")

    assert (result["database"], result["buffer"]) == ("sqlite", "spool")
    assert [run["path"] for run in result["runs"]] == ["auto", "generic"]
    for run in result["runs"]:
        assert run["check"] == "ok"
        assert run["decisions"] == 60  # the batch sent twice counts once
        assert run["decisions_per_s"] > 0
        assert set(run["transactions_by_writer"]) == {"orm"}


def test_on_postgresql_and_the_stream_the_copy_writer_takes_the_backlog():
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL")
    if not database_url.startswith("postgres") or not redis_url:
        pytest.skip("the PostgreSQL + Redis pass")
    scratch = database_url.split("?")[0].rstrip("/") + "_bench"  # created and dropped
    # The pass's own Redis db may be 0, which the benchmark refuses: it takes the scratch db
    # tests/performance/test_bench_batch_path.py uses (only its stream key, deleted after).
    scratch_redis = redis_url.rsplit("/", 1)[0] + "/14"
    try:
        result = _run(
            "--batches", "3", "--items", "100", "--paths", "auto,generic", "--flushers", "1,2",
            "--database-url", scratch, "--redis-url", scratch_redis,
        )  # fmt: skip
    except AssertionError as exc:
        if "permission denied to create database" in str(exc):
            missing(f"cannot create {scratch}: {exc}")
        raise

    assert (result["database"], result["buffer"]) == ("postgresql", "redis stream")
    runs = {(run["path"], run["flushers"]): run for run in result["runs"]}
    assert list(runs) == [("auto", 1), ("auto", 2), ("generic", 1), ("generic", 2)]
    # Every run wrote each decision once with its outcome, the two-flusher runs too (whether
    # the second flusher finds work in so small a backlog is up to timing; the overlap itself
    # is forced in tests/routing/test_flushes_running_at_once_write_each_decision_and_...).
    assert {run["check"] for run in runs.values()} == {"ok"}
    assert {run["decisions"] for run in runs.values()} == {300}
    assert runs["auto", 1]["transactions_by_writer"].get("postgresql", 0) >= 1
    assert set(runs["generic", 1]["transactions_by_writer"]) == {"orm"}
    assert set(result["decisions_per_s"]) == {
        "auto, 1 flushers",
        "auto, 2 flushers",
        "generic, 1 flushers",
        "generic, 2 flushers",
    }
