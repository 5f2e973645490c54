"""Random event sequences drive the pure breaker and a plain reference model side by side."""

import json

from hypothesis import given
from hypothesis import strategies as st

from routing.core.breaker import (
    CLOSED_RECORD,
    BreakerConfig,
    BreakerRecord,
    allows,
    on_dispatch,
    on_result,
)
from routing.core.types import BreakerState
from tests.routing.core.fleets import PROPERTY_SETTINGS


class ReferenceBreaker:
    """The documented semantics, written as plainly as possible (mutable, no sharing)."""

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.results: list[bool] = []
        self.consecutive = 0
        self.openings = 0
        self.open_until = 0.0
        self.closed_at = 0.0
        self.probes = 0
        self.probe_successes = 0
        self.last_probe = 0.0

    def trip(self, now: float) -> None:
        if self.state == "half_open" or now - self.closed_at < self.cfg.backoff_reset_s:
            self.openings += 1
        else:
            self.openings = 1
        duration = self.cfg.base_open_s * self.cfg.backoff_multiplier ** (self.openings - 1)
        self.open_until = now + min(self.cfg.max_open_s, duration)
        self.state = "open"
        self.results, self.consecutive, self.probes, self.probe_successes = [], 0, 0, 0

    def close(self, now: float) -> None:
        self.state = "closed"
        self.closed_at = now
        self.results, self.consecutive, self.probes, self.probe_successes = [], 0, 0, 0

    def result(self, ok: bool, now: float) -> None:
        if self.state == "closed":
            self.results = (self.results + [ok])[-self.cfg.window_size :]
            self.consecutive = 0 if ok else self.consecutive + 1
            failures = self.results.count(False)
            rate_trips = (
                len(self.results) >= self.cfg.minimum_calls
                and failures / len(self.results) >= self.cfg.failure_rate_threshold
            )
            if self.consecutive >= self.cfg.consecutive_failures or rate_trips:
                self.trip(now)
        elif self.state == "half_open":
            if not ok:
                self.trip(now)
                return
            self.probe_successes += 1
            self.probes = max(0, self.probes - 1)
            if self.probe_successes >= self.cfg.successes_to_close:
                self.close(now)

    def dispatch(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.probes, self.probe_successes, self.last_probe = 1, 0, now
        elif self.state == "half_open":
            stale = now - self.last_probe >= self.cfg.probe_timeout_s
            self.probes = 1 if stale else self.probes + 1
            self.last_probe = now

    def allows(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self.open_until
        stale = now - self.last_probe >= self.cfg.probe_timeout_s
        return self.probes < self.cfg.half_open_max_probes or stale


configs = st.builds(
    BreakerConfig,
    consecutive_failures=st.integers(1, 6),
    window_size=st.integers(1, 12),
    failure_rate_threshold=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    minimum_calls=st.integers(1, 12),
    base_open_s=st.sampled_from([1.0, 2.0, 5.0]),
    backoff_multiplier=st.sampled_from([1.0, 2.0, 3.0]),
    max_open_s=st.sampled_from([5.0, 20.0, 60.0]),
    half_open_max_probes=st.integers(1, 4),
    successes_to_close=st.integers(1, 4),
    probe_timeout_s=st.sampled_from([3.0, 10.0]),
    backoff_reset_s=st.sampled_from([15.0, 100.0]),
    # The plain thresholds (judging against the service's normal has its own tests:
    # test_a_breaker_judges_failures_against_the_services_normal.py).
    baseline_min_results=st.just(0),
)
events = st.lists(
    st.one_of(
        st.sampled_from(["success", "failure", "dispatch"]),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 3.0, 7.0, 30.0])),
    ),
    max_size=120,
)


@PROPERTY_SETTINGS
@given(cfg=configs, sequence=events)
def test_the_breaker_agrees_with_the_reference_model_on_every_event(cfg, sequence):
    now = 0.0
    record = CLOSED_RECORD
    reference = ReferenceBreaker(cfg)
    for event in sequence:
        if isinstance(event, tuple):
            now += event[1]
        elif event == "dispatch":
            record = on_dispatch(record, now, cfg)
            reference.dispatch(now)
        else:
            record = on_result(record, event == "success", now, cfg)
            reference.result(event == "success", now)
        assert record.state == BreakerState(reference.state)
        assert allows(record, now, cfg) == reference.allows(now)
        assert record.open_count == reference.openings
        # The record survives a JSON round trip unchanged (what the Redis backend stores).
        assert BreakerRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
