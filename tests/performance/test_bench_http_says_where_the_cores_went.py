"""``bench_http`` splits each phase's machine CPU between the server, redis-server, the load
generator, interrupts and everything else, so a figure says what limited it. Bookkeeping only,
no timing."""

import time

import pytest

from tests.performance.bench_http import _machine_cpu, _phase_figures
from tests.performance.bench_load import PhaseResult


def measure(ok: int, seconds: float, server_s: dict, machine_s: dict) -> dict:
    result = PhaseResult(
        requests=ok,
        ok=ok,
        other=0,
        no_eligible=0,
        duration_us=int(seconds * 1e6),
        errors={},
        latency_us={"mean": 1.0, "max": 2.0, "p50": 1.0, "p90": 1.5, "p99": 2.0},
    )
    return {
        "result": result,
        "connections": 2,
        "cpu_s_by_process": server_s,
        "loadavg_1m": 1.0,
        "machine_cpu_s": machine_s,
    }


def test_the_cores_of_a_phase_add_up_to_the_busy_machine():
    # given: two rounds of 10 s; the machine busy 36 s in all (1.8 cores)
    machine = {"busy": 18.0, "redis": 2.0, "loadgen": 1.0, "bench": 0.2, "irq": 0.4}
    rounds = [
        measure(100, 10.0, {1: 6.0, 2: 2.0}, machine),
        measure(100, 10.0, {1: 5.0, 2: 3.0}, machine),
    ]

    # when
    figures = _phase_figures(rounds, "batch", batch_size=1000)

    # then: server 16 s, redis 4, wrk 2, bench 0.4, irq 0.8, the rest (12.8 s) someone else's
    cores = figures["machine_cores"]
    assert cores == {
        "busy": 1.8,
        "server": 0.8,
        "redis": 0.2,
        "loadgen": 0.1,
        "bench": 0.02,
        "irq": 0.04,
        "other": 0.64,
    }
    parts = sum(v for k, v in cores.items() if k != "busy")
    assert parts == pytest.approx(cores["busy"])
    assert figures["redis_cpu_us_per_item"] == pytest.approx(1e6 * 4.0 / (200 * 1000))


def test_the_machine_counters_only_grow():
    before = _machine_cpu()
    # /proc counts CPU time in clock ticks (10 ms): burn several, not a loop that may fit in one.
    start = time.process_time()
    while time.process_time() - start < 0.05:
        sum(i * i for i in range(10_000))
    after = _machine_cpu()

    assert set(before) == {"busy", "irq", "redis", "loadgen", "bench"}
    assert all(after[k] >= before[k] for k in before)
    assert after["bench"] > before["bench"]
