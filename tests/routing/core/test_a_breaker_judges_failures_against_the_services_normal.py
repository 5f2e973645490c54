"""A breaker opens on failures that are abnormal for the service, not on the failures it
always has: a model that gets a third of its (hard) requests wrong is still the best choice
for them, and the learner already prices that in. Shutting it out for minutes at a time on a
run that its own failure rate makes likely is what sent the fleet simulation's requests to
worse services (docs/BREAKER.md, "Judged against the service's normal")."""

import math
import random

import pytest

from routing.core import breaker as br
from routing.core.state import LocalStateStore
from routing.core.types import BreakerState
from tests.support.clock import FakeClock

SERVICE = "svc"


def _store(config: br.BreakerConfig) -> tuple[LocalStateStore, FakeClock]:
    clock = FakeClock(1000.0)
    return LocalStateStore(breaker_config=config, clock=clock), clock


def _shut_out(config: br.BreakerConfig, failure_share: float, calls: int, seed: int) -> float:
    """The share of ``calls`` (one per 10 ms) a service failing ``failure_share`` of its
    calls at random is shut out of by its breaker (a shut-out call is not made)."""
    store, clock = _store(config)
    rng = random.Random(seed)
    refused = 0
    for n in range(calls):
        clock.now += 0.01
        if not br.allows(store.breaker_record(SERVICE), clock.now, config):
            refused += 1
            continue
        store.record_routed(f"r{n}", [SERVICE])
        store.record_outcome(f"r{n}", SERVICE, rng.random() >= failure_share, 100.0)
    return refused / calls


PLAIN = br.BreakerConfig(baseline_min_results=0)
RELATIVE = br.BreakerConfig()


def test_a_service_that_normally_fails_a_third_of_its_calls_is_not_shut_out():
    relative = []
    for seed in (1, 2, 3):
        # 30,000 calls, 5 minutes: the plain thresholds (5 in a row, half of 20) trip on such
        # a service within a few hundred calls, and each opening in a row lasts twice as long
        # (a failed probe re-opens it): it spends most of the time shut out.
        plain = _shut_out(PLAIN, 0.35, 30_000, seed)
        assert plain > 0.5, (seed, plain)
        # Judged against its normal, a run or a window share that unlikely (1e-5, 4 sd) still
        # comes by chance now and then: seed 2 draws 17 failures in 20 and, later, 12 in a
        # row (5 s + 10 s of 300 s shut out). Never most of the time.
        relative.append(_shut_out(RELATIVE, 0.35, 30_000, seed))
        assert relative[-1] < 0.1, (seed, relative)
    assert sum(relative) / len(relative) < 0.03, relative


def _fail_until_open(store: LocalStateStore, clock: FakeClock) -> int:
    for k in range(1, 100):
        clock.now += 0.01
        store.record_routed(f"x{k}", [SERVICE])
        if store.record_outcome(f"x{k}", SERVICE, False, 5.0) is BreakerState.OPEN:
            return k
    raise AssertionError("never opened")


def _settle(store: LocalStateStore, clock: FakeClock, failure_share: float, calls: int) -> None:
    """``calls`` results failing ``failure_share`` of the time, evenly spread (no runs)."""
    owed = 0.0
    for n in range(calls):
        clock.now += 0.01
        owed += failure_share
        fails = owed >= 1.0 and n < calls - 1  # ends on a success: no run under way
        owed -= fails
        store.record_routed(f"s{n}", [SERVICE])
        store.record_outcome(f"s{n}", SERVICE, not fails, 100.0)
    assert store.breaker_record(SERVICE).state is BreakerState.CLOSED


def test_the_same_service_failing_every_call_opens_within_an_unlikely_run():
    config = br.BreakerConfig(minimum_calls=10_000)  # runs only
    store, clock = _store(config)
    _settle(store, clock, 0.3, 600)
    normal = br.baseline(store.breaker_record(SERVICE), config)
    assert 0.2 < normal < 0.4
    # 0.3^9 > 1e-5 > 0.3^10: about 10 failures in a row, not 5.
    needed = _fail_until_open(store, clock)
    expected = math.ceil(math.log(config.surprise) / math.log(normal))
    assert expected - 1 <= needed <= expected + 2, (normal, needed)
    assert needed > 5


def test_a_reliable_service_still_opens_on_five_failures_in_a_row():
    store, clock = _store(RELATIVE)
    _settle(store, clock, 0.02, 300)
    assert _fail_until_open(store, clock) == 5


def test_a_jump_in_the_failure_share_opens_it():
    config = br.BreakerConfig(consecutive_failures=1000)  # the rate rule alone
    store, clock = _store(config)
    _settle(store, clock, 0.05, 300)
    rng = random.Random(9)
    for n in range(40):
        clock.now += 0.01
        store.record_routed(f"j{n}", [SERVICE])
        if store.record_outcome(f"j{n}", SERVICE, rng.random() >= 0.7, 100.0) is not None:
            break
    assert store.breaker_record(SERVICE).state is BreakerState.OPEN


@pytest.mark.parametrize(("normal", "failures_to_reopen"), [(0.0, 1), (0.1, 2), (0.35, 3)])
def test_a_probe_reopens_it_only_once_its_failures_are_unlikely(normal, failures_to_reopen):
    config = br.BreakerConfig()
    now = 0.0
    settled = br.BreakerRecord(baseline_failures=normal * 200, baseline_results=200.0)
    record = br.force(settled, BreakerState.HALF_OPEN, now, config)
    for k in range(1, failures_to_reopen + 1):
        record = br.on_result(br.on_dispatch(record, now, config), False, now, config)
        if k < failures_to_reopen:
            assert record.state is BreakerState.HALF_OPEN, k
            assert record.consecutive_failures == k
    assert record.state is BreakerState.OPEN
    # Probe successes still close it, and the normal survives every state.
    record = br.force(record, BreakerState.HALF_OPEN, now, config)
    for _ in range(config.successes_to_close):
        record = br.on_result(br.on_dispatch(record, now, config), True, now, config)
    assert record.state is BreakerState.CLOSED
    assert record.baseline_results > 200.0 * config.baseline_decay**5


def _beta_binomial_run(failures: float, results: float, run: int, config) -> float:
    """P(``run`` failures in a row) under a Beta posterior, in closed form: B(a + k, b) /
    B(a, b) with a = prior failures + failures, b = prior successes + successes."""
    a = config.prior_failure_share * config.prior_results + failures
    b = (1 - config.prior_failure_share) * config.prior_results + results - failures
    return math.exp(
        math.lgamma(a + run) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(a + b + run)
    )


@pytest.mark.parametrize(
    ("failures", "results", "run"), [(0, 0, 8), (0, 3, 7), (0, 200, 3), (70, 200, 11), (5, 8, 3)]
)
def test_a_run_is_judged_by_the_beta_binomial_predictive(failures, results, run):
    config = br.BreakerConfig()
    p = _beta_binomial_run(failures, results, run, config)
    p_shorter = _beta_binomial_run(failures, results, run - 1, config)
    for surprise in (config.surprise, config.probe_surprise, p * 1.001, p * 0.999):
        assert br.run_unlikely(failures, results, run, surprise, config) is (p <= surprise)
    # These are the runs that first cross 1e-5 (0.05 for the probes' case (5, 8, 3)).
    limit = config.probe_surprise if (failures, results) == (5, 8) else config.surprise
    assert p <= limit < p_shorter


def test_a_new_service_is_judged_on_the_little_that_is_known():
    # A new service: with nothing known, 8 failures in a row (5 would be a 1.2e-4 event for a
    # service presumed to fail 5% of its calls, with the uncertainty of 10 results).
    store, clock = _store(RELATIVE)
    assert _fail_until_open(store, clock) == 8
    # Three successes, then the hard requests it fails (the fleet simulation's cheap model
    # drew five failures in a row among its first eight calls and was shut out for minutes):
    # 7 now. A reliable service with 200 results behind it still opens on 5 (above).
    store, clock = _store(RELATIVE)
    _settle(store, clock, 0.0, 3)
    assert br.failures_to_open(store.breaker_record(SERVICE), RELATIVE) == 7
    assert _fail_until_open(store, clock) == 7
    assert br.failures_to_open(br.CLOSED_RECORD, RELATIVE) == 8
    # Plain thresholds: 5, whatever is known.
    store, clock = _store(PLAIN)
    assert _fail_until_open(store, clock) == PLAIN.consecutive_failures


def test_the_run_that_opened_it_is_not_counted_as_normal():
    # A reliable service (4% failures) breaks: the run that opened its breaker was judged
    # abnormal, so its normal stays 4% and its first failed probe re-opens it (with the run's
    # five failures counted in, 6.4%, it would take two: more calls to a broken service).
    store, clock = _store(RELATIVE)
    _settle(store, clock, 0.04, 400)
    before = store.breaker_record(SERVICE)
    assert _fail_until_open(store, clock) == 5
    opened = store.breaker_record(SERVICE)
    # (the counts before the run, aged by the run's four earlier results: 0.995 ** 4)
    assert opened.baseline_failures == pytest.approx(before.baseline_failures, rel=0.05)
    assert opened.baseline_results == pytest.approx(before.baseline_results, rel=0.05)
    clock.now = opened.open_until
    store.record_routed("probe", [SERVICE])
    assert store.breaker_record(SERVICE).state is BreakerState.HALF_OPEN
    assert store.record_outcome("probe", SERVICE, False, 5.0) is BreakerState.OPEN
    # The plain thresholds count every result (and re-open on any failed probe).
    store, clock = _store(PLAIN)
    _settle(store, clock, 0.04, 400)
    before = store.breaker_record(SERVICE)
    _fail_until_open(store, clock)
    assert store.breaker_record(SERVICE).baseline_failures > before.baseline_failures + 4
