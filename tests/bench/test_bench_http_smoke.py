"""``manage.py bench_http`` runs end to end on a tiny load and prints the documented JSON.

Only the shape and the bookkeeping are checked (figures present, counts consistent, no error
answers, the server stopped), never a timing: other suites may be running on the same cores.
"""

import io
import json
import re
import socket

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.integration

PHASE_KEYS = {"path", "p50_ms", "p90_ms", "p99_ms", "non_2xx", "socket_errors", "duration_s"}


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_tiny_run_reports_trivial_route_and_batch_figures_and_stops_the_server():
    # given / when
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "bench_http",
        "--duration=1",
        "--warmup=0",
        "--connections=2",
        "--batch-size=20",
        "--json",
        stdout=out,
        stderr=err,
    )
    result = json.loads(out.getvalue())

    # then: one run of the default setup
    assert result["benchmark"] == "bench_http"
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
