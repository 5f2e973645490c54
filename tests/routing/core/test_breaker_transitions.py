"""The breaker's documented transitions, one by one, with a fake clock."""

import pytest

from routing.core.breaker import BreakerConfig, CircuitBreaker
from routing.core.types import BreakerState
from tests.support.clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock(1000.0)


def make(clock, **overrides) -> CircuitBreaker:
    defaults = dict(
        consecutive_failures=3,
        window_size=10,
        failure_rate_threshold=0.5,
        minimum_calls=6,
        base_open_s=10.0,
        backoff_multiplier=2.0,
        max_open_s=35.0,
        half_open_max_probes=2,
        successes_to_close=2,
        # The plain thresholds; judging against the service's normal is tested in
        # test_a_breaker_judges_failures_against_the_services_normal.py.
        baseline_min_results=0,
    )
    return CircuitBreaker(BreakerConfig(**{**defaults, **overrides}), clock=clock)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.consecutive_failures):
        breaker.result(False)


def test_it_opens_after_consecutive_failures(clock):
    breaker = make(clock)
    breaker.result(False)
    breaker.result(False)
    assert breaker.state is BreakerState.CLOSED
    breaker.result(False)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows()


def test_it_opens_on_failure_rate_only_after_the_minimum_calls(clock):
    breaker = make(clock, consecutive_failures=100)
    for ok in (False, True, False, True, False):
        breaker.result(ok)
    assert breaker.state is BreakerState.CLOSED  # 3/5 failed, but only 5 < 6 calls
    breaker.result(True)
    assert breaker.state is BreakerState.OPEN  # 3/6 = 50%


def test_it_turns_half_open_on_the_first_dispatch_after_the_open_duration(clock):
    breaker = make(clock)
    trip(breaker)
    clock.now += 9.9
    assert not breaker.allows()
    clock.now += 0.1
    assert breaker.allows()
    assert breaker.dispatch() is BreakerState.HALF_OPEN


def test_half_open_lets_only_the_configured_number_of_probes_through(clock):
    breaker = make(clock)
    trip(breaker)
    clock.now += 10
    breaker.dispatch()
    assert breaker.allows()
    breaker.dispatch()
    assert not breaker.allows()


def test_probe_successes_close_it(clock):
    breaker = make(clock)
    trip(breaker)
    clock.now += 10
    breaker.dispatch()
    breaker.dispatch()
    breaker.result(True)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.result(True)
    assert breaker.state is BreakerState.CLOSED


def test_a_probe_failure_reopens_it_for_longer_and_the_backoff_is_capped(clock):
    breaker = make(clock)
    trip(breaker)
    durations = []
    for _ in range(4):
        opened_at = clock.now
        durations.append(breaker.record.open_until - opened_at)
        clock.now = breaker.record.open_until
        breaker.dispatch()
        breaker.result(False)
    assert durations == [10.0, 20.0, 35.0, 35.0]


def test_a_lost_probe_frees_its_slot_after_the_probe_timeout(clock):
    breaker = make(clock, half_open_max_probes=1, probe_timeout_s=5.0)
    trip(breaker)
    clock.now += 10
    breaker.dispatch()
    assert not breaker.allows()
    clock.now += 5
    assert breaker.allows()


def test_late_results_while_open_change_nothing(clock):
    breaker = make(clock)
    trip(breaker)
    before = breaker.record
    breaker.result(True)
    breaker.result(False)
    assert breaker.record == before


def test_the_backoff_starts_over_after_a_long_healthy_spell(clock):
    breaker = make(clock, backoff_reset_s=100.0)
    trip(breaker)
    clock.now += 10
    breaker.dispatch()
    breaker.result(True)
    breaker.result(True)
    assert breaker.state is BreakerState.CLOSED
    clock.now += 101
    trip(breaker)
    assert breaker.record.open_count == 1


def test_a_forced_state_sticks_until_events_move_it(clock):
    breaker = make(clock)
    breaker.force(BreakerState.OPEN)
    assert not breaker.allows()
    breaker.force(BreakerState.CLOSED)
    assert breaker.allows()


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate_threshold=0)
    with pytest.raises(ValueError):
        BreakerConfig(base_open_s=10, max_open_s=5)
