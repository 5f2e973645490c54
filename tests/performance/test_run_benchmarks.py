"""``make bench`` (``python -m tests.performance.run_benchmarks``) writes one JSON report with
every benchmark it ran, and says which failed (figures are never checked)."""

import json

from tests.performance import run_benchmarks


def test_the_report_holds_each_benchmarks_own_json_under_its_name(tmp_path, monkeypatch):
    # given
    report_path = tmp_path / "out" / "report.json"
    monkeypatch.setenv("BENCH_REPORT", str(report_path))

    # when
    status = run_benchmarks.main(["--quick", "--only", "core"])

    # then
    assert status == 0
    report = json.loads(report_path.read_text())
    assert report["mode"] == "quick" and report["all_ok"] is True
    assert list(report["benchmarks"]) == ["core"]
    core = report["benchmarks"]["core"]
    assert core["ok"] is True and core["exit_status"] == 0
    assert core["command"] == "python -m tests.performance.bench_core --quick"
    assert set(core["result"]) == {"decision", "batch", "load_balance", "outcome"}


def test_a_benchmark_that_fails_is_reported_and_fails_the_run(tmp_path, monkeypatch):
    # given: a benchmark whose module does not exist
    monkeypatch.setitem(run_benchmarks.BENCHMARKS, "broken", ("bench_nothing_here", [], []))
    report_path = tmp_path / "report.json"

    # when
    status = run_benchmarks.main(["--only", "broken", "--report", str(report_path)])

    # then
    assert status == 1
    report = json.loads(report_path.read_text())
    broken = report["benchmarks"]["broken"]
    assert report["all_ok"] is False and broken["ok"] is False
    assert broken["error"] == "no JSON on stdout"
    assert any("bench_nothing_here" in line for line in broken["stderr_tail"])
