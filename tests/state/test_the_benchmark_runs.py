"""The state benchmark runs end to end and reports both backends (tiny run)."""

import json

import pytest

from telemetry.state import bench

pytestmark = pytest.mark.integration  # real Redis


def test_the_benchmark_prints_figures_for_both_backends(redis_url, capsys):
    assert bench.main(["--ops", "20", "--services", "8", "--redis-url", redis_url]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["services"] == 8
    for name in ("record_routed", "record_outcome", "view"):
        assert report["local"][name]["p50_us"] > 0
        assert report["redis"][name]["p50_us"] > 0
    assert report["redis"]["view_refresh"]["ops"] == 20
    assert report["redis"]["degraded_during_run"] is False
