"""Routing metrics: Prometheus series per process, and a fleet-wide JSON summary.

Prometheus (``GET /metrics``): ``moe_routing_total{strategy,outcome}``,
``moe_expert_usage{service}``, ``moe_routing_latency_ms`` (decision time histogram) and
``moe_load_balance_score``. With ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` and the
image's entrypoint do when ``MOE_WEB_WORKERS`` > 1) every worker writes its series there and
``/metrics`` adds them up (see ``telemetry/urls.py``).

The JSON summary (``GET /api/v1/metrics``) must describe the whole fleet, not one worker: with
Redis the counters live in Redis hashes updated on the route pipeline (no extra round trip);
without Redis there is one web process and they live here.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter

import numpy as np
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from routing.core.balancing import jain_index

ROUTING_TOTAL = PromCounter("moe_routing_total", "Routed requests", ["strategy", "outcome"])
EXPERT_USAGE = PromCounter("moe_expert_usage", "Requests sent to each service", ["service"])
ROUTING_LATENCY = Histogram(
    "moe_routing_latency_ms",
    "Time to decide one request (ms)",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 50),
)
# Set on every /metrics scrape from the fleet-wide state: with several workers (multiprocess
# mode) the value last computed is the one to export, not one series per worker.
LOAD_BALANCE = Gauge(
    "moe_load_balance_score",
    "Jain's index of utilisation over healthy services",
    multiprocess_mode="mostrecent",
)
OUTCOMES = PromCounter("moe_outcomes_total", "Reported outcomes", ["service", "success"])
REWARD = PromCounter(
    "moe_outcome_reward",
    "Sum of outcome rewards under the objective (/ outcomes = mean)",
    ["service"],
)
# The objective over time: one point per OBJECTIVE_BUCKET_S seconds, the last OBJECTIVE_POINTS.
OBJECTIVE_BUCKET_S = 10
OBJECTIVE_POINTS = 60
OBJECTIVE_KEY = "moe:objective:"

# Decision-latency histogram for percentiles in the JSON summary (upper bounds, ms).
LATENCY_BOUNDS = np.array(
    [0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 1e9]
)
_BOUNDS = LATENCY_BOUNDS.tolist()
REDIS_KEY = "moe:metrics"


_OUTCOME = {False: "routed", True: "no_eligible"}
# A batch's fields are counted a column at a time (C-speed map and Counter).
_decision = attrgetter("decision")
_latency = attrgetter("latency_ms")
_strategy = attrgetter("strategy")
_selected = attrgetter("selected")
_no_eligible = attrgetter("no_eligible_service")
_strategy_outcome = attrgetter("strategy", "no_eligible_service")
_children: dict[tuple, object] = {}


def _child(metric, *labels):
    """``metric.labels(*labels)``, cached: the lookup costs several microseconds."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_many(histogram: Histogram, amount: float, n: int) -> None:
    """``n`` x ``histogram.observe(amount)`` in one update of its sum and bucket (a batch's
    decisions share one decision time). Uses the client's internals (``_sum``, ``_buckets``,
    ``_upper_bounds``, as ``Histogram.observe`` does); falls back to observing ``n`` times."""
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for _ in range(n):
            histogram.observe(amount)
        return
    i = bisect_left(bounds, amount)  # the first bound >= amount, as observe's loop finds it
    total.inc(amount * n)
    if i < len(buckets):
        buckets[i].inc(n)


def _percentile(counts: np.ndarray, q: float) -> float:
    total = counts.sum()
    if total == 0:
        return 0.0
    idx = int(np.searchsorted(np.cumsum(counts), q * total))
    return float(LATENCY_BOUNDS[min(idx, len(LATENCY_BOUNDS) - 2)])


class RoutingMetrics:
    def __init__(self, redis_client=None) -> None:
        self.redis = redis_client
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._objective: dict[int, list] = {}  # bucket -> [reward sum, outcomes]

    @staticmethod
    def _fields(routed: Sequence) -> Counter[str]:
        """Counter fields for routed requests. Counted by value first (C-speed ``Counter``),
        then each distinct value formatted once: a batch shares its decision time, strategy
        and a handful of services, so a 1,000-item batch formats a dozen keys, not 3,000."""
        fields: Counter[str] = Counter()
        if len(routed) == 1:
            d = routed[0].decision
            fields[f"lat:{bisect_left(_BOUNDS, d.latency_ms)}"] = 1
            fields[f"strategy:{d.strategy}"] = 1
            for sid in d.selected:
                fields[f"service:{sid}"] += 1
            if d.no_eligible_service:
                fields["total:no_eligible"] = 1
            fields["total:routed"] = 1
            return fields
        decisions = list(map(_decision, routed))
        for latency, n in Counter(map(_latency, decisions)).items():
            fields[f"lat:{bisect_left(_BOUNDS, latency)}"] += n
        for strategy, n in Counter(map(_strategy, decisions)).items():
            fields[f"strategy:{strategy}"] += n
        for sid, n in Counter(chain.from_iterable(map(_selected, decisions))).items():
            fields[f"service:{sid}"] += n
        no_eligible = sum(map(_no_eligible, decisions))
        if no_eligible:
            fields["total:no_eligible"] += no_eligible
        fields["total:routed"] += len(routed)
        return fields

    def _prometheus(self, routed: Sequence, fields: Counter[str]) -> None:
        for key, n in fields.items():
            if key.startswith("service:"):
                _child(EXPERT_USAGE, key[8:]).inc(n)
        if len(routed) == 1:
            d = routed[0].decision
            _child(ROUTING_TOTAL, d.strategy, _OUTCOME[d.no_eligible_service]).inc()
            ROUTING_LATENCY.observe(d.latency_ms)
            return
        decisions = list(map(_decision, routed))
        by_strategy = Counter(map(_strategy_outcome, decisions))
        for (strategy, none), n in by_strategy.items():
            _child(ROUTING_TOTAL, strategy, _OUTCOME[none]).inc(n)
        for latency, n in Counter(map(_latency, decisions)).items():
            observe_many(ROUTING_LATENCY, latency, n)

    def queue(self, pipe, routed: Sequence, prometheus: bool = True) -> Counter[str]:
        """Count routed requests fleet-wide, queued on the caller's Redis pipeline. With
        ``prometheus=False`` the caller calls :meth:`count_prometheus` once the pipeline
        ran (a rate-limited commit records nothing)."""
        fields = self._fields(routed)
        for key, n in fields.items():
            pipe.hincrby(REDIS_KEY, key, n)
        if prometheus:
            self._prometheus(routed, fields)
        return fields

    def count_prometheus(self, routed: Sequence, fields: Counter[str]) -> None:
        self._prometheus(routed, fields)

    def queue_correction(
        self, pipe, before: Sequence, after: Sequence, fields: Counter[str]
    ) -> Counter[str]:
        """Decisions changed after their counts were queued (``before`` became ``after``: a
        breaker refused a service at dispatch): the difference, queued on ``pipe``; returns
        ``fields`` with it (for :meth:`count_prometheus`)."""
        old, new = self._fields(before), self._fields(after)
        out = Counter(fields)
        for key in old.keys() | new.keys():
            delta = new.get(key, 0) - old.get(key, 0)
            if delta:
                pipe.hincrby(REDIS_KEY, key, delta)
                out[key] += delta
        return out

    def record_local(self, routed: Sequence) -> None:
        fields = self._fields(routed)
        with self._lock:
            self._counts.update(fields)
        self._prometheus(routed, fields)

    def record_outcome(self, service_id: str, success: bool, reward: float = 0.0) -> None:
        OUTCOMES.labels(service_id, "true" if success else "false").inc()
        _child(REWARD, service_id).inc(reward)
        key = "total:outcomes" if success else "total:failures"
        bucket = int(time.time() // OBJECTIVE_BUCKET_S)
        if self.redis is not None:
            import redis

            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hincrby(REDIS_KEY, key, 1)
                if not success:
                    pipe.hincrby(REDIS_KEY, "total:outcomes", 1)
                pipe.hincrbyfloat(OBJECTIVE_KEY + str(bucket), "s", reward)
                pipe.hincrby(OBJECTIVE_KEY + str(bucket), "n", 1)
                pipe.expire(OBJECTIVE_KEY + str(bucket), OBJECTIVE_BUCKET_S * OBJECTIVE_POINTS)
                pipe.execute()
                return
            except redis.RedisError:
                pass
        with self._lock:
            self._counts[key] += 1
            if not success:
                self._counts["total:outcomes"] += 1
            point = self._objective.setdefault(bucket, [0.0, 0])
            point[0] += reward
            point[1] += 1
            while len(self._objective) > OBJECTIVE_POINTS:
                del self._objective[min(self._objective)]

    def objective_series(self) -> list[list[float]]:
        """``[[bucket start (epoch s), mean reward, outcomes], ...]``, oldest first."""
        now = int(time.time() // OBJECTIVE_BUCKET_S)
        buckets = range(now - OBJECTIVE_POINTS + 1, now + 1)
        points: dict[int, list] = {}
        if self.redis is not None:
            import redis

            try:
                pipe = self.redis.pipeline(transaction=False)
                for b in buckets:
                    pipe.hgetall(OBJECTIVE_KEY + str(b))
                for b, raw in zip(buckets, pipe.execute(), strict=True):
                    if raw:
                        points[b] = [float(raw.get(b"s", 0)), int(raw.get(b"n", 0))]
            except redis.RedisError:
                pass
        with self._lock:
            for b, (total, n) in self._objective.items():
                if b in buckets:
                    mine = points.setdefault(b, [0.0, 0])
                    mine[0] += total
                    mine[1] += n
        return [
            [b * OBJECTIVE_BUCKET_S, round(total / n, 4), n]
            for b, (total, n) in sorted(points.items())
            if n
        ]

    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        if self.redis is not None:
            import redis

            try:
                raw = self.redis.hgetall(REDIS_KEY)
                counts.update({k.decode(): int(v) for k, v in raw.items()})
            except redis.RedisError:
                pass
        with self._lock:
            counts.update(self._counts)
        return counts

    def summary(self, snapshot, live: dict[str, dict]) -> dict:
        counts = self.counts()
        lat = np.zeros(len(LATENCY_BOUNDS))
        per_strategy: dict[str, int] = {}
        routed_to: dict[str, int] = {}
        for key, n in counts.items():
            kind, _, name = key.partition(":")
            if kind == "lat":
                lat[int(name)] += n
            elif kind == "strategy":
                per_strategy[name] = n
            elif kind == "service":
                routed_to[name] = n
        per_service = {}
        util = []
        shares = []
        for spec in snapshot.services:
            in_flight = live.get(spec.service_id, {}).get("in_flight", 0)
            utilisation = in_flight / spec.max_capacity
            per_service[spec.service_id] = {
                "routed": routed_to.get(spec.service_id, 0),
                "in_flight": in_flight,
                "utilisation": round(utilisation, 4),
                "breaker_state": live.get(spec.service_id, {}).get("breaker_state", "closed"),
                "health": spec.health.value,
                "status": spec.status.value,
            }
            if spec.health.value != "unhealthy" and spec.status.value == "active":
                util.append(utilisation)
                shares.append(routed_to.get(spec.service_id, 0) / spec.max_capacity)
        score = jain_index(np.array(util))
        LOAD_BALANCE.set(score)
        return {
            "totals": {
                "routed": counts.get("total:routed", 0),
                "no_eligible": counts.get("total:no_eligible", 0),
                "outcomes": counts.get("total:outcomes", 0),
                "failures": counts.get("total:failures", 0),
            },
            "per_strategy": per_strategy,
            "per_service": per_service,
            "latency_ms": {
                "p50": _percentile(lat, 0.5),
                "p90": _percentile(lat, 0.9),
                "p99": _percentile(lat, 0.99),
            },
            "load_balance_score": round(score, 4),
            "routing_balance_score": round(jain_index(np.array(shares)), 4),
        }
