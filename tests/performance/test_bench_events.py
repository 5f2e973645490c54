"""The live-feed benchmark runs end to end with dashboards connected and prints its JSON
(tiny run in its own process: it replaces the consumers' fleet summary; no timing checked)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_reports_every_dashboard_count_and_what_the_dashboards_received():
    # when
    proc = subprocess.run(
        [sys.executable, "-m", "tests.performance.bench_events", "--json"]
        + ["--seconds", "0.2", "--consumers", "0,2", "--batch", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # then
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["benchmark"] == "bench_events" and report["batch_items"] == 10
    none, two = report["runs"]
    assert (none["consumers"], two["consumers"]) == (0, 2)
    for run in (none, two):
        assert run["routes_per_s"] > 0 and run["baseline_per_s"] > 0
        assert 0 < run["single_p50_us"] <= run["single_p99_us"]
    assert two["items_delivered_per_consumer"] > 0
