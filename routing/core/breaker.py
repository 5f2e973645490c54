"""Circuit breaker: a pure, serialisable state machine (closed -> open -> half-open -> closed).

Every transition is a pure function of ``(record, event, now, config)`` returning a new frozen
:class:`BreakerRecord`, so the local state store and a Redis backend (which keeps the record as
JSON next to the service's other live state) run exactly the same rules. The clock is always
passed in; nothing here reads the time. Semantics and a comparison with resilience4j and Envoy
outlier detection are in ``docs/BREAKER.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from routing.core.types import BreakerState


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens, how long it stays open and how it probes its way back."""

    # Open after this many failures in a row (Envoy consecutive_5xx defaults to 5).
    consecutive_failures: int = 5
    # Count-based sliding window of the last N results (resilience4j slidingWindowSize).
    window_size: int = 20
    # Open when failures / results in the window reaches this (resilience4j: 50%) ...
    failure_rate_threshold: float = 0.5
    # ... but only once the window holds at least this many results (minimumNumberOfCalls).
    minimum_calls: int = 10
    # First opening lasts base_open_s; each further opening in a row multiplies it, capped.
    base_open_s: float = 5.0
    backoff_multiplier: float = 2.0
    max_open_s: float = 300.0
    # Half-open: at most this many probes in flight; this many successes close the breaker.
    half_open_max_probes: int = 3
    successes_to_close: int = 2
    # A probe whose outcome never arrives frees its slot after this long.
    probe_timeout_s: float = 30.0
    # After staying closed this long, the next opening starts again from base_open_s.
    backoff_reset_s: float = 600.0
    # Judged against the service's own normal: its failure share over about its last
    # baseline_memory results while closed (exponentially weighted). A service that fails a
    # share b of its calls as a rule (a model that gets hard requests wrong, which the learner
    # already knows and prices in) opens only on a run of failures less likely than
    # ``surprise``, or (once baseline_min_results are in) on a window failure share
    # baseline_sigmas binomial standard errors above b; a probe in half-open re-opens it only
    # once the probes' failures are less likely than ``probe_surprise``. "Likely" is the
    # Beta-binomial predictive: the counts before the run plus a prior of ``prior_results``
    # results failing ``prior_failure_share`` of the time, so a service with few results is
    # judged on what little is known (8 failures in a row for a new one, 7 after 3
    # successes) and one with many on its normal (5 for b <= 0.08, 6 at 0.1, 8 at 0.2, 11
    # at 0.35).
    # baseline_min_results = 0: always the plain thresholds above.
    baseline_memory: float = 200.0
    baseline_min_results: int = 20
    surprise: float = 1e-5
    baseline_sigmas: float = 4.0
    probe_surprise: float = 0.05
    prior_failure_share: float = 0.05
    prior_results: float = 10.0

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.window_size < 1 or self.minimum_calls < 1:
            raise ValueError("breaker thresholds and window sizes must be >= 1")
        if not 0.0 < self.failure_rate_threshold <= 1.0:
            raise ValueError("failure_rate_threshold must be in (0, 1]")
        if self.base_open_s <= 0 or self.max_open_s < self.base_open_s:
            raise ValueError("need 0 < base_open_s <= max_open_s")
        if self.backoff_multiplier < 1.0:
            raise ValueError("backoff_multiplier must be >= 1")
        if self.half_open_max_probes < 1 or self.successes_to_close < 1:
            raise ValueError("half_open_max_probes and successes_to_close must be >= 1")
        if self.baseline_min_results < 0 or self.baseline_sigmas < 0:
            raise ValueError("baseline_min_results and baseline_sigmas must be >= 0")
        if self.baseline_memory < 1.0:
            raise ValueError("baseline_memory must be >= 1")
        if not (0.0 < self.surprise < 1.0 and 0.0 < self.probe_surprise < 1.0):
            raise ValueError("surprise and probe_surprise must be in (0, 1)")
        if not 0.0 < self.prior_failure_share < 1.0 or self.prior_results <= 0.0:
            raise ValueError("need 0 < prior_failure_share < 1 and prior_results > 0")

    @property
    def baseline_decay(self) -> float:
        return 1.0 - 1.0 / self.baseline_memory

    def open_duration(self, open_count: int) -> float:
        """How long the ``open_count``-th opening in a row lasts."""
        return min(self.max_open_s, self.base_open_s * self.backoff_multiplier ** (open_count - 1))


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """Everything a breaker remembers. JSON-safe through :meth:`to_dict` / :meth:`from_dict`.

    ``window`` holds the last results while closed, oldest first (1 = failure, 0 = success).
    ``consecutive_failures`` is the run of failures while closed, and the probes' failures
    while half-open. ``baseline_failures`` / ``baseline_results``: exponentially weighted
    counts of the results while closed (see ``BreakerConfig.baseline_memory``) but for a
    run of failures that opened it (judged abnormal), kept through open and half-open.
    """

    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    window: tuple[int, ...] = ()
    open_count: int = 0  # openings in a row; drives the backoff
    open_until: float = 0.0
    closed_at: float = 0.0
    probes_in_flight: int = 0
    probe_successes: int = 0
    last_probe_at: float = 0.0
    baseline_failures: float = 0.0
    baseline_results: float = 0.0

    @property
    def failure_rate(self) -> float:
        return sum(self.window) / len(self.window) if self.window else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "window": list(self.window),
            "open_count": self.open_count,
            "open_until": self.open_until,
            "closed_at": self.closed_at,
            "probes_in_flight": self.probes_in_flight,
            "probe_successes": self.probe_successes,
            "last_probe_at": self.last_probe_at,
            "baseline_failures": self.baseline_failures,
            "baseline_results": self.baseline_results,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakerRecord:
        return cls(
            state=BreakerState(data.get("state", BreakerState.CLOSED.value)),
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            window=tuple(int(bool(v)) for v in data.get("window", ())),
            open_count=int(data.get("open_count", 0)),
            open_until=float(data.get("open_until", 0.0)),
            closed_at=float(data.get("closed_at", 0.0)),
            probes_in_flight=int(data.get("probes_in_flight", 0)),
            probe_successes=int(data.get("probe_successes", 0)),
            last_probe_at=float(data.get("last_probe_at", 0.0)),
            baseline_failures=float(data.get("baseline_failures", 0.0)),
            baseline_results=float(data.get("baseline_results", 0.0)),
        )


CLOSED_RECORD = BreakerRecord()


def _open(record: BreakerRecord, now: float, config: BreakerConfig) -> BreakerRecord:
    # Backoff grows only for openings "in a row": a long quiet spell closed resets it.
    in_a_row = record.state is BreakerState.HALF_OPEN or (
        now - record.closed_at < config.backoff_reset_s
    )
    open_count = record.open_count + 1 if in_a_row else 1
    return BreakerRecord(
        state=BreakerState.OPEN,
        open_count=open_count,
        open_until=now + config.open_duration(open_count),
        closed_at=record.closed_at,
        baseline_failures=record.baseline_failures,
        baseline_results=record.baseline_results,
    )


def _close(record: BreakerRecord, now: float) -> BreakerRecord:
    return BreakerRecord(
        state=BreakerState.CLOSED,
        open_count=record.open_count,
        closed_at=now,
        baseline_failures=record.baseline_failures,
        baseline_results=record.baseline_results,
    )


def baseline(record: BreakerRecord, config: BreakerConfig) -> float:
    """The service's normal failure share before the result being counted (0 until
    ``baseline_min_results`` are in, or with ``baseline_min_results`` 0)."""
    if config.baseline_min_results == 0 or record.baseline_results < config.baseline_min_results:
        return 0.0
    return record.baseline_failures / record.baseline_results


def run_unlikely(
    failures: float, results: float, run: int, surprise: float, config: BreakerConfig
) -> bool:
    """Whether ``run`` failures in a row are less likely than ``surprise`` for a service with
    ``failures`` out of ``results`` before the run: the Beta-binomial predictive (the product
    of each failure's probability given the counts and the run's earlier failures), with a
    prior of ``prior_results`` results failing ``prior_failure_share`` of the time. With many
    results this is ``b ** run`` at the service's share ``b``; with few, the prior and the
    uncertainty make a run less surprising (a new service needs 8 at the defaults)."""
    prior_failures = config.prior_failure_share * config.prior_results
    failures = max(0.0, failures) + prior_failures
    results = max(0.0, results) + config.prior_results
    log_likelihood = 0.0
    for i in range(run):
        log_likelihood += math.log((failures + i) / (results + i))
    return log_likelihood <= math.log(surprise)


def failures_to_open(record: BreakerRecord, config: BreakerConfig) -> int:
    """How many more failures in a row open this closed breaker by the run rule (the
    window's failure share may open it sooner): 8 for a new service at the defaults, 5 for
    a reliable one with a history."""
    if record.state is not BreakerState.CLOSED:
        raise ValueError("only a closed breaker opens on a run")
    runs_only = replace(config, minimum_calls=2**62)
    for k in range(1, max(config.consecutive_failures, config.window_size) + 1):
        record = on_result(record, False, record.closed_at, runs_only)
        if record.state is not BreakerState.CLOSED:
            return k
    raise AssertionError("a run of max(consecutive_failures, window_size) always opens")


def on_result(
    record: BreakerRecord, success: bool, now: float, config: BreakerConfig
) -> BreakerRecord:
    """A call to the service finished; returns the record after counting it."""
    if record.state is BreakerState.OPEN:
        # A late result from a call routed before the breaker opened changes nothing.
        return record
    if record.state is BreakerState.CLOSED:
        decay = config.baseline_decay
        failed = 0.0 if success else 1.0
        counted_failures = record.baseline_failures * decay + failed
        counted_results = record.baseline_results * decay + 1.0
        window = (*record.window, 0 if success else 1)[-config.window_size :]
        consecutive = 0 if success else record.consecutive_failures + 1
        failures = sum(window)
        # The counts before this run (its earlier failures are in them): what it is judged
        # against, and where the normal goes on from if it opens the breaker.
        before_failures = max(0.0, record.baseline_failures - (consecutive - 1))
        before_results = max(0.0, record.baseline_results - (consecutive - 1))
        if config.baseline_min_results == 0:  # the plain thresholds
            on_run = consecutive >= config.consecutive_failures
        elif consecutive >= max(config.consecutive_failures, config.window_size):
            on_run = True
        else:
            on_run = consecutive >= config.consecutive_failures and run_unlikely(
                before_failures, before_results, consecutive, config.surprise, config
            )
        rate = config.failure_rate_threshold
        # Until the normal is known, runs alone open it (a share of a few results says little).
        known = record.baseline_results >= config.baseline_min_results
        normal = baseline(record, config)
        if normal > 0.0:
            spread = config.baseline_sigmas * math.sqrt(normal * (1.0 - normal) / len(window))
            rate = max(rate, min(1.0, normal + spread))
        if on_run and config.baseline_min_results:
            # The run was judged abnormal: the normal (and the probes, judged against it) go
            # on from the counts before it. A reliable service that broke is re-opened by
            # its first failed probe, however many failures its opening run added.
            counted_failures, counted_results = before_failures, before_results
        if on_run or (
            known and len(window) >= config.minimum_calls and failures >= rate * len(window)
        ):
            counted = replace(
                record, baseline_failures=counted_failures, baseline_results=counted_results
            )
            return _open(counted, now, config)
        return BreakerRecord(
            BreakerState.CLOSED, consecutive, window, record.open_count, record.open_until,
            record.closed_at, record.probes_in_flight, record.probe_successes,
            record.last_probe_at, counted_failures, counted_results,
        )  # fmt: skip
    # Half-open (judged against the counts it had when it opened): each result frees its slot.
    if not success:
        probe_failures = record.consecutive_failures + 1
        if config.baseline_min_results == 0 or run_unlikely(
            record.baseline_failures,
            record.baseline_results,
            probe_failures,
            config.probe_surprise,
            config,
        ):
            return _open(record, now, config)
        return replace(
            record,
            consecutive_failures=probe_failures,
            probes_in_flight=max(0, record.probes_in_flight - 1),
        )
    successes = record.probe_successes + 1
    if successes >= config.successes_to_close:
        return _close(record, now)
    return replace(
        record,
        probe_successes=successes,
        probes_in_flight=max(0, record.probes_in_flight - 1),
    )


def allows(record: BreakerRecord, now: float, config: BreakerConfig) -> bool:
    """Whether a request may be routed to the service now."""
    if record.state is BreakerState.CLOSED:
        return True
    if record.state is BreakerState.OPEN:
        return now >= record.open_until
    return (
        record.probes_in_flight < config.half_open_max_probes
        or now - record.last_probe_at >= config.probe_timeout_s
    )


def on_dispatch(record: BreakerRecord, now: float, config: BreakerConfig) -> BreakerRecord:
    """A request was routed to the service. An open breaker past its deadline turns half-open
    and this request is its first probe; in half-open every dispatch uses a probe slot."""
    if record.state is BreakerState.CLOSED:
        return record
    if record.state is BreakerState.OPEN:
        if now < record.open_until:
            return record
        return BreakerRecord(
            state=BreakerState.HALF_OPEN,
            open_count=record.open_count,
            open_until=record.open_until,
            closed_at=record.closed_at,
            probes_in_flight=1,
            last_probe_at=now,
            baseline_failures=record.baseline_failures,
            baseline_results=record.baseline_results,
        )
    stale = now - record.last_probe_at >= config.probe_timeout_s
    in_flight = 1 if stale else record.probes_in_flight + 1
    return replace(record, probes_in_flight=in_flight, last_probe_at=now)


def force(record: BreakerRecord, state: BreakerState, now: float, config: BreakerConfig):
    """Put a breaker into ``state`` by hand (operators, tests)."""
    if state is BreakerState.CLOSED:
        return _close(record, now)
    if state is BreakerState.OPEN:
        return _open(record, now, config)
    return BreakerRecord(
        state=BreakerState.HALF_OPEN,
        open_count=record.open_count,
        open_until=now,
        closed_at=record.closed_at,
        last_probe_at=now,
        baseline_failures=record.baseline_failures,
        baseline_results=record.baseline_results,
    )


class CircuitBreaker:
    """Convenience wrapper: one mutable breaker over the pure functions, with its own clock.

    Not thread-safe on its own; the state stores hold their lock around it.
    """

    def __init__(
        self,
        config: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        record: BreakerRecord = CLOSED_RECORD,
    ) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.record = record

    @property
    def state(self) -> BreakerState:
        return self.record.state

    def allows(self) -> bool:
        return allows(self.record, self.clock(), self.config)

    def dispatch(self) -> BreakerState:
        self.record = on_dispatch(self.record, self.clock(), self.config)
        return self.record.state

    def result(self, success: bool) -> BreakerState:
        self.record = on_result(self.record, success, self.clock(), self.config)
        return self.record.state

    def force(self, state: BreakerState) -> None:
        self.record = force(self.record, state, self.clock(), self.config)
