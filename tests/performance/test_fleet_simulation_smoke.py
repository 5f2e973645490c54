"""The fleet simulation, small (``--quick``): every phase runs through the real HTTP API, every
strategy only ever picks services able to serve the request, and nothing answers with a 5xx.

The harness starts its own uvicorn (and Celery worker for the retrain) in a throw-away var dir,
whatever database or Redis this test session uses.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.performance.fleet_simulation import TARGET_CANDIDATE_RATE, phase_bounds

ROOT = Path(__file__).resolve().parents[2]
QUICK_REQUESTS = 200

pytestmark = [pytest.mark.integration, pytest.mark.config_independent]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fleet-sim") / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.performance.fleet_simulation",
            "--quick",
            "--requests",
            str(QUICK_REQUESTS),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), f"no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(out.read_text())
    data["_exit_code"] = proc.returncode
    data["_output"] = proc.stdout[-4000:] + proc.stderr[-4000:]
    return data


def test_every_strategy_ran_every_phase(report):
    phases = [name for name, _, _ in phase_bounds(QUICK_REQUESTS)]
    assert report["phases"] == phases
    assert report["_exit_code"] == 0, report["_output"]
    assert set(report["strategies"]) == {"adaptive", "semantic"}
    for name, result in report["strategies"].items():
        assert "error" not in result, f"{name}: {result.get('error')}"
        for phase in phases:
            assert result["phases"][phase]["requests"] > 0, (name, phase)
        assert "state" in result["phases"]["retrain"], name
    for baseline in ("oracle", "random"):
        assert set(report["baselines"][baseline]["phases"]) == set(phases)
    drift = report["drift"]
    assert drift and drift.get("windows"), drift
    assert drift["strategy"] == "adaptive"
    # Then the failing service is healthy again (quick: 3 s of 1-s windows).
    recovery = drift["recovery"]
    assert len(recovery["windows"]) == 3, recovery
    assert sum(w["requests"] for w in recovery["windows"]) > 0, recovery
    assert recovery["summary"]["server_errors"] == 0, recovery


def test_every_choice_can_serve_its_request(report):
    for name, result in report["strategies"].items():
        for phase in report["phases"]:
            rate = result["phases"][phase]["candidate_rate"]
            assert rate >= TARGET_CANDIDATE_RATE, (name, phase, rate)


def test_no_server_errors(report):
    assert report["totals"]["server_errors"] == 0, report["_output"]
    for name, result in report["strategies"].items():
        assert "server_log_tail" not in result, (name, result["server_log_tail"])


def test_the_random_baseline_is_worse_than_the_oracle(report):
    last = report["phases"][-1]
    oracle = report["baselines"]["oracle"]["phases"][last]
    rand = report["baselines"]["random"]["phases"][last]
    assert oracle["optimal_rate"] == 1.0
    assert rand["optimal_rate"] < oracle["optimal_rate"]
    assert rand["mean_regret"] > 0.0
