"""The benchmark's output contract (figures are not checked: timing is never asserted)."""

import json

from routing.core.strategies import STRATEGY_NAMES
from tests.performance import bench_core


def test_quick_bench_prints_one_json_object_covering_every_strategy(capsys):
    assert bench_core.main(["--quick"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert set(result) == {"decision", "batch", "load_balance", "outcome"}
    assert {(r["strategy"], r["services"]) for r in result["decision"]} == {
        (s, n) for s in STRATEGY_NAMES for n in (8, 64, 256)
    }
    assert all(r["p50_us"] <= r["p99_us"] for r in result["decision"])
    assert [r["strategy"] for r in result["batch"]] == list(STRATEGY_NAMES)
    assert all(r["decisions_per_s"] > 0 for r in result["batch"])
    for row in result["load_balance"]:
        assert 0 < row["score"] <= 1 and 0 < row["random_baseline"] <= 1
    for row in result["outcome"].values():
        assert row["calls"] == 50 and 0 < row["p50_us"] <= row["p99_us"]


def test_batch_only_prints_the_batch_figures_at_the_size_asked(capsys):
    assert bench_core.main(["--batch-only", "300"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert set(result) == {"batch"}
    assert [r["strategy"] for r in result["batch"]] == list(STRATEGY_NAMES)
    assert {r["requests"] for r in result["batch"]} == {300}
