"""``python -m tests.performance.bench_http`` runs end to end on a tiny load and prints the
documented JSON.

Only the shape and the bookkeeping are checked (figures present, counts consistent, no error
answers, the server stopped), never a timing: other suites may be running on the same cores.
"""

import json
import re
import socket

import pytest

from tests.performance import bench_http

pytestmark = [pytest.mark.integration, pytest.mark.config_independent]

PHASE_KEYS = {"path", "p50_ms", "p90_ms", "p99_ms", "non_2xx", "socket_errors", "duration_s"}


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_tiny_run_reports_trivial_route_and_batch_figures_and_stops_the_server(capsys):
    # given / when
    argv = ["--duration=1", "--warmup=0", "--connections=2", "--batch-size=20", "--json"]
    argv += ["--dashboards=2"]  # live-feed clients (bench_dashboards) during one more phase
    assert bench_http.main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    # then: one run of the default setup
    assert result["benchmark"] == "bench_http"
    assert result["command"].startswith("python -m tests.performance.bench_http --duration=1")
    assert result["machine"]["cpus"] >= 1
    assert result["settings"]["batch_size"] == 20
    (run,) = result["runs"]
    assert (run["server"], run["state"], run["workers"]) == ("uvicorn", "local", 1)
    assert "--workers 1 --no-access-log --lifespan off" in run["server_command"]

    # every phase measured something and answered only 2xx
    for name in ("trivial", "route", "batch"):
        assert run[name].keys() >= PHASE_KEYS, name
        assert run[name]["non_2xx"] == 0 and run[name]["socket_errors"] == 0, name
        assert 0 < run[name]["p50_ms"] <= run[name]["p99_ms"], name
    assert run["trivial"]["path"] == "/api/v1/ping"
    assert run["route"]["requests_per_s"] > 0 and run["trivial"]["requests_per_s"] > 0
    batch = run["batch"]
    assert batch["items_per_call"] == 20
    assert batch["decisions_per_s"] == pytest.approx(batch["calls_per_s"] * 20, rel=0.01)
    assert batch["no_eligible_items"] == 0

    # the dashboards connected and received route events
    assert run["dashboards_seen"]["connected"] == 2
    assert run["dashboards_seen"]["route_events"] > 0
    assert run["route_dashboards"]["non_2xx"] == 0

    # the ratio and the targets are reported
    assert run["route_trivial_ratio"] == pytest.approx(
        run["route"]["requests_per_s"] / run["trivial"]["requests_per_s"], abs=0.002
    )
    assert set(run["targets"]) == {"route_ge_70pct_of_trivial", "batch_ge_50k_decisions_per_s"}
    assert run["valid"] is True and run["problems"] == []
    assert set(result["summary"]) >= {"all_targets_met", "all_runs_valid"}

    # and the server is gone
    port = int(re.search(r"--port (\d+)", run["server_command"]).group(1))
    assert _port_is_closed(port)


def test_several_workers_without_redis_are_refused_before_anything_starts(capsys):
    assert bench_http.main(["--workers=2", "--json"]) == 1

    assert "--redis" in capsys.readouterr().err
