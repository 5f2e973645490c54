"""``fleet_simulation --clients N`` drives each phase from N concurrent clients (each decision is
made while others await their outcomes, as in production), and ``--workers W`` runs W uvicorn
workers sharing Redis. Each client counts its own share of a phase; the phase's figures are
the sum of those shares."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.performance import fleet_simulation as sim

ROOT = Path(__file__).resolve().parents[2]


def _stats_of(fleet, picks, rng_seed) -> sim.PhaseStats:
    stats = sim.PhaseStats()
    rng = random.Random(rng_seed)
    for req, chosen in picks:
        outcome = None
        if chosen is not None:
            outcome = fleet.sample(
                chosen, req.request_type, req.capabilities, req.complexity, rng, frozenset()
            )
        stats.add(fleet, req, chosen, outcome)
        stats.route_ms.append(1.0 + req.index % 7)
        stats.concrete["switch_transformer" if req.index % 3 else "semantic"] += 1
        if req.index % 50 == 0:
            stats.n_503 += 1
            stats.note_error(f"sample {req.index}")
    return stats


def test_the_clients_shares_add_up_to_the_phase_as_one_client_counts_it():
    fleet = sim.Fleet(sim.profile_set("alt"), sim.Objective())
    requests = sim.Workload(fleet.profiles, 3).take(400)
    rng = random.Random(5)
    picks = []
    for req in requests:
        able = fleet.capable(req.request_type, req.capabilities)
        picks.append((req, rng.choice(able) if able and req.index % 11 else None))

    whole = _stats_of(fleet, picks, 9)
    # Four clients, interleaved, each with its part of the same picks and outcome draws.
    merged = sim.PhaseStats()
    parts = [_stats_of(fleet, picks[i::4], 9) for i in range(4)]
    for part in parts:
        merged.merge(part)

    a, b = whole.summary(), merged.summary()
    assert b["requests"] == 400 and b["n_503"] == whole.n_503 > 0
    for key in ("routed", "candidate_rate", "optimal_rate", "near_optimal_rate", "tied_rate"):
        assert a[key] == b[key], key
    assert a["by_type"] == b["by_type"] and a["chosen_by_type"] == b["chosen_by_type"]
    assert a["concrete_strategies"] == b["concrete_strategies"]
    assert sorted(whole.route_ms) == sorted(merged.route_ms)
    assert merged.avoidable_by_type == whole.avoidable_by_type
    # Outcomes are drawn per client, so only their counts must agree here.
    assert merged.outcomes == sum(p.outcomes for p in parts) == whole.outcomes
    assert 1 <= len(merged.error_samples) <= 5


def test_more_than_one_worker_needs_redis(capsys):
    with pytest.raises(SystemExit):
        sim.parse_args(["--workers", "2"])
    assert "--redis" in capsys.readouterr().err
    assert sim.parse_args(["--workers", "2", "--redis", "redis://127.0.0.1:6379/9"]).workers == 2
    with pytest.raises(SystemExit):
        sim.parse_args(["--clients", "0"])


@pytest.mark.integration
@pytest.mark.config_independent
def test_concurrent_clients_route_every_request_once_without_errors(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.performance.fleet_simulation",
            "--quick",
            "--requests",
            "120",
            "--strategies",
            "adaptive",
            "--no-drift",
            "--clients",
            "4",
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
    report = json.loads(out.read_text())
    assert report["clients"] == 4
    phases = report["strategies"]["adaptive"]["phases"]
    for name, lo, hi in sim.phase_bounds(120):
        phase = phases[name]
        assert phase["requests"] == hi - lo, name
        assert phase["routed"] == hi - lo and phase["candidate_rate"] == 1.0, name
        assert phase["server_errors"] == phase["outcome_errors"] == 0, phase.get("error_samples")
    assert report["totals"]["server_errors"] == 0
