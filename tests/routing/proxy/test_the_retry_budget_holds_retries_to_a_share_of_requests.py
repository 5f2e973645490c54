"""The retry budget (retries <= ratio x requests + a floor, over a sliding window) and the
Retry-After forms a 429 may carry."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from routing.forwarding import RetryBudget, retry_after_seconds
from tests.support.clock import FakeClock


def test_retries_stay_within_the_ratio_of_recent_requests():
    # given: 100 requests in the window, 20% may be retried, no floor
    clock = FakeClock(1000.0)
    budget = RetryBudget(ratio=0.2, window_s=10.0, min_retries=0, clock=clock)
    for _ in range(100):
        budget.record_request()

    # when
    granted = sum(budget.try_spend() for _ in range(50))

    # then
    assert granted == 20
    assert budget.stats() == {"requests": 100, "retries": 20}


def test_the_floor_lets_a_quiet_router_retry():
    budget = RetryBudget(ratio=0.2, window_s=10.0, min_retries=3, clock=FakeClock(1000.0))
    budget.record_request()

    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_the_window_slides():
    clock = FakeClock(1000.0)
    budget = RetryBudget(ratio=0.5, window_s=10.0, min_retries=0, clock=clock)
    for _ in range(4):
        budget.record_request()
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()

    clock.now += 11  # the old requests and retries left the window
    for _ in range(2):
        budget.record_request()

    assert budget.try_spend() and not budget.try_spend()


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    in_30_s = format_datetime(now + timedelta(seconds=30), usegmt=True)

    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(in_30_s, now=now.timestamp()) == 30.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    # digits of other scripts are not a number of seconds ("²" made int() raise: a 500)
    assert retry_after_seconds("\xb2") is None
    assert retry_after_seconds("\u0663") is None
