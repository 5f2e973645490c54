"""``python -m tests.performance.bench_proxy`` runs end to end through real uvicorn processes
(the router's ASGI fast path and a loopback backend) and prints its JSON.

Only the bookkeeping is checked (every request answered, both bodies whole, figures present),
never a timing or a memory figure: other suites may be running on the same cores.
"""

import json

import pytest

from tests.performance import bench_proxy

pytestmark = [pytest.mark.integration, pytest.mark.config_independent]


def test_a_quick_run_proxies_every_request_and_both_large_bodies(capsys):
    # when
    assert bench_proxy.main(["--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    # then
    assert result["command"].startswith("python -m tests.performance.bench_proxy")
    latency, throughput, memory = result["latency"], result["throughput"], result["memory"]
    assert latency["requests_each"] == 100
    assert {"direct_p50_ms", "proxied_p50_ms", "added_p50_ms"} <= latency.keys()
    assert throughput["errors"] == 0
    assert throughput["proxied_rps"] > 0 and throughput["direct_rps"] > 0
    for phase in ("upload", "download"):  # the bench asserts the sizes it got back
        assert memory[phase]["rss_peak_mb"] >= memory[phase]["rss_before_mb"] > 0
