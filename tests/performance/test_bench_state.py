"""The state benchmark runs end to end and reports both backends (tiny run, on a private
``redis-server`` it starts and stops itself)."""

import json
import shutil

import pytest

from tests.performance import bench_state
from tests.support.requirements import missing

pytestmark = pytest.mark.integration  # a real Redis


@pytest.fixture
def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    return binary


def test_the_benchmark_prints_figures_for_both_backends(redis_server_binary, capsys):
    assert bench_state.main(["--ops", "20", "--services", "8", "--spawn-redis"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["services"] == 8
    assert report["redis_server"] == "private (--spawn-redis)"
    for name in ("record_routed", "record_outcome", "view"):
        assert 0 < report["local"][name]["p50_us"] <= report["local"][name]["p99_us"]
        assert 0 < report["redis"][name]["p50_us"] <= report["redis"][name]["p99_us"]
    assert report["redis"]["view_refresh"]["ops"] == 20
    assert report["redis"]["degraded_during_run"] is False
