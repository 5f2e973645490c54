"""The Lua port of the breaker makes exactly the decisions of routing/core/breaker.py.

Random configs and random event sequences (results, dispatches, forced states, time steps,
including steps that land exactly on a deadline or the backoff reset) are replayed through
RedisStateStore and through the pure Python functions; after every event the stored record
must equal the Python record field for field (floats bit for bit), and the view must agree
with ``allows``. A dispatch in Python is ``allows`` then ``on_dispatch``: the store takes a
slot only when the breaker allows one, and reports the dispatch as refused otherwise.
"""

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from routing.core import breaker as br
from routing.core.types import BreakerState
from tests.telemetry.state.conftest import FakeClock, fleet

pytestmark = pytest.mark.integration  # real Redis

SERVICE = "svc-00"


# Durations are often multiples of 1/8 s so that sums stay exact and a step can land exactly on
# a boundary (``now - last_probe_at == probe_timeout_s`` and the like).
NICE = st.integers(1, 400).map(lambda k: k / 8)


def durations(low: float, high: float):
    return NICE.filter(lambda x: low <= x <= high) | st.floats(low, high)


@st.composite
def configs(draw) -> br.BreakerConfig:
    base = draw(durations(0.125, 50.0))
    return br.BreakerConfig(
        consecutive_failures=draw(st.integers(1, 4)),
        window_size=draw(st.integers(1, 8)),
        # Exact fractions make "failures == threshold x calls" reachable.
        failure_rate_threshold=draw(st.sampled_from([0.25, 0.5, 1.0]) | st.floats(0.01, 1.0)),
        minimum_calls=draw(st.integers(1, 8)),
        base_open_s=base,
        backoff_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0]) | st.floats(1.0, 10.0)),
        max_open_s=base * draw(st.sampled_from([1.0, 4.0]) | st.floats(1.0, 1000.0)),
        half_open_max_probes=draw(st.integers(1, 3)),
        successes_to_close=draw(st.integers(1, 3)),
        probe_timeout_s=draw(durations(0.125, 50.0)),
        backoff_reset_s=draw(durations(0.125, 50.0)),
        # Judged against the service's normal.
        baseline_memory=draw(st.sampled_from([1.0, 4.0, 200.0]) | st.floats(1.0, 50.0)),
        baseline_min_results=draw(st.integers(0, 6)),
        surprise=draw(st.sampled_from([1e-4, 0.1, 0.5]) | st.floats(1e-6, 0.99)),
        baseline_sigmas=draw(st.sampled_from([0.0, 1.0, 3.0]) | st.floats(0.0, 5.0)),
        probe_surprise=draw(st.sampled_from([0.05, 0.3]) | st.floats(1e-3, 0.99)),
        prior_failure_share=draw(st.sampled_from([0.05, 0.5]) | st.floats(0.001, 0.999)),
        prior_results=draw(st.sampled_from([1.0, 10.0]) | st.floats(0.01, 100.0)),
    )


# Weighted so that breakers actually open, probe and close within a short sequence.
EVENTS = (
    ["fail"] * 4
    + ["ok"] * 3
    + ["dispatch"] * 4
    + ["force_open", "force_half_open", "force_closed"]
    + ["to_open_until"] * 2
    + ["to_probe_timeout", "to_backoff_reset", "tick", "advance"]
)
steps_strategy = st.lists(st.tuples(st.sampled_from(EVENTS), durations(0.0, 100.0)), max_size=60)


# Boundaries a random walk rarely lands on exactly, spelled out.
EDGE = br.BreakerConfig(half_open_max_probes=1, successes_to_close=2, probe_timeout_s=2.0)
RATE_EDGE = br.BreakerConfig(window_size=4, minimum_calls=4, failure_rate_threshold=0.5)
# A service that fails half its calls as a rule: runs, rates and probes judged against that.
NORMAL_EDGE = br.BreakerConfig(
    window_size=4,
    minimum_calls=4,
    failure_rate_threshold=1.0,
    baseline_memory=8.0,
    baseline_min_results=4,
)
# ... where the window's failure share (2 of 4) is above the plain threshold, not above b=0.25
# plus three standard errors.
NORMAL_RATE_EDGE = br.BreakerConfig(
    window_size=4, minimum_calls=4, baseline_memory=12.0, baseline_min_results=4,
    baseline_sigmas=3.0,
)  # fmt: skip
# A new service under a uniform prior: k failures in a row have probability 1 / (k + 1), so
# the third one crosses 0.25 (computed in logs on both sides).
COLD_EDGE = br.BreakerConfig(
    consecutive_failures=2, prior_failure_share=0.5, prior_results=2.0, surprise=0.25,
    probe_surprise=0.3,
)  # fmt: skip
EDGE_STEPS = {
    "backoff reset": ["force_open", "force_closed", "to_backoff_reset", "force_open"],
    "stale probe": ["force_half_open", "dispatch", "to_probe_timeout", "dispatch"],
    "probe success frees a slot": ["force_half_open", "dispatch", "ok", "dispatch", "ok"],
    "open deadline": ["fail"] * 5 + ["to_open_until", "dispatch", "dispatch"],
    "failure rate exactly at the threshold": ["fail", "ok", "fail", "ok", "ok", "fail"],
    "a normally failing service": ["ok", "fail"] * 6
    + ["fail"] * 6
    + ["to_open_until", "dispatch", "fail", "dispatch", "fail", "dispatch", "ok"],
    "a window judged against the normal": ["ok", "ok", "fail", "ok"] * 3 + ["fail", "fail"],
    "a cold start": ["ok"]
    + ["fail"] * 4
    + ["to_open_until", "dispatch", "fail", "dispatch", "fail", "dispatch", "fail"],
}


def edge(name: str) -> list[tuple[str, float]]:
    return [(kind, 0.0) for kind in EDGE_STEPS[name]]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(config=EDGE, steps=edge("backoff reset"), start=1_700_000_000)
@example(config=EDGE, steps=edge("stale probe"), start=1_700_000_000)
@example(config=EDGE, steps=edge("probe success frees a slot"), start=1_700_000_000)
@example(config=EDGE, steps=edge("open deadline"), start=1_700_000_000)
@example(config=RATE_EDGE, steps=edge("failure rate exactly at the threshold"), start=1_700_000_000)
@example(config=NORMAL_EDGE, steps=edge("a normally failing service"), start=1_700_000_000)
@example(
    config=NORMAL_RATE_EDGE, steps=edge("a window judged against the normal"), start=1_700_000_000
)
@example(config=COLD_EDGE, steps=edge("a cold start"), start=1_700_000_000)
@given(
    config=configs(), steps=steps_strategy, start=st.integers(0, 2_000_000_000) | st.floats(0, 2e9)
)
def test_random_event_sequences_leave_identical_records(make_store, config, steps, start):
    clock = FakeClock(start)
    store = make_store(
        breaker_config=config,
        clock=clock,
        view_max_age_s=0.0,
        key_prefix=f"test:state:lua:{uuid.uuid4().hex[:12]}:",
    )
    snapshot = fleet(1)
    record = br.CLOSED_RECORD
    try:
        for n, (kind, step) in enumerate(steps):
            now = clock.now
            if kind in ("ok", "fail"):
                record = br.on_result(record, kind == "ok", now, config)
                store.record_outcome(f"r{n}", SERVICE, kind == "ok", None)
            elif kind == "dispatch":
                allowed = br.allows(record, now, config)
                if allowed:
                    record = br.on_dispatch(record, now, config)
                refused = store.record_routed(f"r{n}", [SERVICE])
                assert refused == (() if allowed else (SERVICE,)), n
            elif kind.startswith("force_"):
                state = BreakerState(kind.removeprefix("force_"))
                record = br.force(record, state, now, config)
                store.force_breaker(SERVICE, state)
            elif kind == "to_open_until":
                clock.now = max(now, record.open_until)
            elif kind == "to_probe_timeout":
                clock.now = max(now, record.last_probe_at + config.probe_timeout_s)
            elif kind == "to_backoff_reset":
                clock.now = max(now, record.closed_at + config.backoff_reset_s)
            elif kind == "tick":
                clock.advance(0.125)
            else:
                clock.advance(step)
            assert store.breaker_record(SERVICE) == record, (n, kind)
            allows = bool(store.view(snapshot).breaker_allows[0])
            assert allows == br.allows(record, clock.now, config), (n, kind)
    finally:
        keys = list(store._client.scan_iter(f"{store.key_prefix}*"))
        if keys:
            store._client.delete(*keys)
