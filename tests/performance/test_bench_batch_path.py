"""The batch-path benchmark's output contract (figures are not checked: timing is never
asserted). The instruction count needs valgrind and ~1 minute: run by hand (docs)."""

import json
import subprocess
import sys

import pytest

from tests.performance import bench_batch_path


@pytest.mark.config_independent
def test_a_short_run_prints_cpu_per_decision_as_json():
    done = subprocess.run(
        [sys.executable, "-m", "tests.performance.bench_batch_path"]
        + ["--items", "40", "--batches", "4", "--chunks", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["items_per_batch"] == 40 and result["batches"] == 4
    cpu = result["cpu_us_per_decision"]
    assert 0 < cpu["min"] <= cpu["median"]


def test_the_instruction_total_is_read_from_the_callgrind_summary(tmp_path):
    out = tmp_path / "callgrind.out.1"
    # the header's summary can read 0 (counting was off at start): the totals come last
    out.write_text("version: 1\nsummary: 0\nevents: Ir\nfn=main\n1 5\ntotals: 123456\n")
    empty = tmp_path / "callgrind.out.2"
    empty.write_text("version: 1\nevents: Ir\n")
    assert bench_batch_path._totals(out) == 123456
    assert bench_batch_path._totals(empty) == 0


@pytest.mark.config_independent
def test_with_redis_state_it_also_prints_redis_time_per_decision():
    import redis

    from tests.support.requirements import missing
    from tests.telemetry.state.conftest import TEST_REDIS_URL

    scratch = TEST_REDIS_URL.rsplit("/", 1)[0] + "/14"  # flushed by the benchmark
    try:
        redis.Redis.from_url(scratch).ping()
    except redis.RedisError as exc:
        missing(f"no Redis at {scratch}: {exc}")
    done = subprocess.run(
        [sys.executable, "-m", "tests.performance.bench_batch_path", "--redis-url", scratch]
        + ["--items", "40", "--batches", "4", "--chunks", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    redis_time = json.loads(done.stdout)["redis_usec_per_decision"]
    assert redis_time["all"] > 0 and redis_time["evalsha"] > 0
