"""In-process live state: the local backend of :class:`~routing.core.types.LiveStateStore`.

State is keyed by service id, not by snapshot position, so it survives registry changes
(a new snapshot simply reads the same records in its own order). One lock guards everything.

Every selection is a **lease**, one per (request id, service id) pair: the service counts it in
flight until its outcome is reported or, if that never happens, until the lease expires after
the service's expected service time (:meth:`LeaseConfig.ttl` of its latency EWMA). In-flight
thus means concurrent work: a client that never reports keeps at most about rate x ttl leases
alive (Little's law), so it cannot make a healthy fleet look full. An outcome for (request,
service) releases only that pair's lease; routing the same pair again renews its lease.

``view(snapshot)`` is on the routing hot path. It keeps the last :class:`LiveView` per snapshot
and, after a change, copies those arrays and rewrites only the services that changed since;
with nothing changed it returns the cached view as is. The arrays of a returned view are
read-only and never mutated afterwards, so callers may keep them.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from routing.core import breaker as br
from routing.core.types import BreakerState, FleetSnapshot, LiveView

# Called as on_transition(service_id, old_state, new_state), outside the store's lock.
TransitionCallback = Callable[[str, BreakerState, BreakerState], None]

_VIEW_CACHE_SNAPSHOTS = 4


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """How long an unreported selection keeps counting in flight on a service.

    ``default_s`` while the service has no latency EWMA yet (0), else ``factor`` x EWMA,
    clamped to [``min_s``, ``max_s``]. ``max_s`` is the longest any lease lasts. The Redis
    backend compiles the same rule into its routed script (``telemetry/state/scripts.py``).
    """

    default_s: float = 0.05
    factor: float = 2.0
    min_s: float = 0.01
    max_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("default_s", "factor", "min_s", "max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"lease {name} must be a number, not {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"lease {name} must be finite and > 0, not {value!r}")
        if self.min_s > self.max_s:
            raise ValueError(f"lease min_s ({self.min_s}) must be <= max_s ({self.max_s})")
        if not self.min_s <= self.default_s <= self.max_s:
            raise ValueError(
                f"lease default_s ({self.default_s}) must be within "
                f"[min_s, max_s] = [{self.min_s}, {self.max_s}]"
            )

    @classmethod
    def fixed(cls, seconds: float) -> LeaseConfig:
        """Every lease lasts ``seconds``, whatever the latency (for benchmarks and tests)."""
        return cls(default_s=seconds, factor=1.0, min_s=seconds, max_s=seconds)

    def ttl(self, ewma_latency_ms: float) -> float:
        """Seconds a lease on a service with this latency EWMA (ms; 0 = none yet) lasts."""
        if ewma_latency_ms == 0:
            return self.default_s
        # Same operations in the same order as the Lua port, so both agree bit for bit.
        return min(self.max_s, max(self.min_s, self.factor * ewma_latency_ms / 1000))


@dataclass(slots=True)
class _ServiceLive:
    window: deque[int]
    in_flight: int = 0
    ewma_latency_ms: float = 0.0
    failures_in_window: int = 0
    anomaly: float = 0.0
    breaker: br.BreakerRecord = br.CLOSED_RECORD

    @property
    def error_rate(self) -> float:
        return self.failures_in_window / len(self.window) if self.window else 0.0


@dataclass(slots=True)
class _ViewCache:
    snapshot: FleetSnapshot
    view: LiveView | None = None
    # Service ids changed since ``view`` was built; None means rebuild everything.
    dirty: set[str] | None = field(default_factory=set)


class LocalStateStore:
    """Live per-service state for one process. Thread-safe."""

    def __init__(
        self,
        breaker_config: br.BreakerConfig | None = None,
        ewma_alpha: float = 0.2,
        lease: LeaseConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        error_window: int = 50,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        if not 0.0 < ewma_alpha <= 1.0:
            raise ValueError("ewma_alpha must be in (0, 1]")
        self.breaker_config = breaker_config or br.BreakerConfig()
        self.ewma_alpha = ewma_alpha
        self.lease = lease or LeaseConfig()
        self.clock = clock
        self.error_window = error_window
        self.on_transition = on_transition
        self._lock = threading.Lock()
        self._services: dict[str, _ServiceLive] = {}
        # request id -> {service id: lease deadline} for its leases still in flight
        self._requests: dict[str, dict[str, float]] = {}
        # (deadline, service id, request ids): the leases on that service taken at once (one
        # route, or a batch); an id's entry is stale once its lease is released or renewed
        self._expiry: list[tuple[float, str, tuple[str, ...]]] = []
        # (time, service id): when a breaker's "allows" may flip without any event.
        self._breaker_timers: list[tuple[float, str]] = []
        self._caches: OrderedDict[int, _ViewCache] = OrderedDict()

    # -- LiveStateStore -------------------------------------------------------------------

    def view(self, snapshot: FleetSnapshot) -> LiveView:
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._fire_breaker_timers(now)
            cache = self._cache_for(snapshot)
            if cache.view is not None and not cache.dirty:
                return cache.view
            cache.view = self._build_view(cache, now)
            cache.dirty = set()
            return cache.view

    def record_routed(self, request_id: str, service_ids: Sequence[str]) -> None:
        self.record_routed_many(((request_id, service_ids),))

    def record_routed_many(
        self, items: Sequence[tuple[str, Sequence[str]]], *, forced: Collection[str] = ()
    ) -> list[tuple[str, str]]:
        """:meth:`record_routed` for ``(request id, service ids)`` pairs, in order, at one
        instant: a batch takes its leases under one lock, and a service's leases share one
        expiry entry (their deadline is the same). Returns the refused pairs, always none:
        one process's view is exact, so nothing is routed to a breaker that refuses it but
        by panic routing (``forced``, accepted like any other dispatch)."""
        transitions: list[tuple[str, BreakerState, BreakerState]] = []
        with self._lock:
            now = self.clock()
            self._expire(now)
            requests = self._requests
            ttl = self.lease.ttl
            config = self.breaker_config
            # service id -> [live record, deadline, request ids leased now]
            taken: dict[str, list] = {}
            for request_id, service_ids in items:
                leases = requests.get(request_id)
                if leases is None:
                    leases = requests[request_id] = {}
                for service_id in service_ids:
                    entry = taken.get(service_id)
                    if entry is None:
                        live = self._live(service_id)
                        entry = taken[service_id] = [live, now + ttl(live.ewma_latency_ms), []]
                    live = entry[0]
                    if service_id not in leases:
                        live.in_flight += 1
                    leases[service_id] = entry[1]  # a pair routed again renews its lease
                    entry[2].append(request_id)
                    old = live.breaker
                    if old.state is not BreakerState.CLOSED:  # closed: dispatch changes nothing
                        live.breaker = br.on_dispatch(old, now, config)
                        if live.breaker is not old:
                            self._breaker_changed(service_id, old, live.breaker, transitions)
                if not leases:
                    del requests[request_id]
            for service_id, (_, deadline, request_ids) in taken.items():
                heapq.heappush(self._expiry, (deadline, service_id, tuple(request_ids)))
                self._mark_dirty(service_id)
        self._notify(transitions)
        return []

    def record_outcome(
        self, request_id: str, service_id: str, success: bool, latency_ms: float | None
    ) -> BreakerState | None:
        """Release the (request, service) lease (if still held) and count the outcome.

        Only that pair's lease is released: the request's leases on other services keep
        counting. An outcome for an unknown or expired lease (or a health probe) still feeds
        the EWMA, the error window and the breaker; it just has nothing in flight to release.
        """
        transitions: list[tuple[str, BreakerState, BreakerState]] = []
        with self._lock:
            now = self.clock()
            self._expire(now)
            live = self._live(service_id)
            self._release(request_id, service_id, live)
            if latency_ms is not None and latency_ms >= 0:
                if live.ewma_latency_ms == 0.0:
                    live.ewma_latency_ms = float(latency_ms)
                else:
                    a = self.ewma_alpha
                    live.ewma_latency_ms = a * float(latency_ms) + (1 - a) * live.ewma_latency_ms
            if len(live.window) == live.window.maxlen:
                live.failures_in_window -= live.window[0]
            live.window.append(0 if success else 1)
            live.failures_in_window += 0 if success else 1
            old = live.breaker
            live.breaker = br.on_result(old, success, now, self.breaker_config)
            new_state = live.breaker.state if live.breaker.state is not old.state else None
            if live.breaker is not old:
                self._breaker_changed(service_id, old, live.breaker, transitions)
            self._mark_dirty(service_id)
        self._notify(transitions)
        return new_state

    def set_anomaly(self, service_id: str, score: float) -> None:
        with self._lock:
            self._live(service_id).anomaly = min(1.0, max(0.0, float(score)))
            self._mark_dirty(service_id)

    # -- operators, API, tests -------------------------------------------------------------

    def breaker_record(self, service_id: str) -> br.BreakerRecord:
        with self._lock:
            live = self._services.get(service_id)
            return live.breaker if live else br.CLOSED_RECORD

    def force_breaker(self, service_id: str, state: BreakerState) -> None:
        transitions: list[tuple[str, BreakerState, BreakerState]] = []
        with self._lock:
            live = self._live(service_id)
            old = live.breaker
            live.breaker = br.force(old, BreakerState(state), self.clock(), self.breaker_config)
            self._breaker_changed(service_id, old, live.breaker, transitions)
            self._mark_dirty(service_id)
        self._notify(transitions)

    def remove_service(self, service_id: str) -> None:
        """Forget a deregistered service (its leases are dropped too)."""
        with self._lock:
            self._services.pop(service_id, None)
            for request_id, leases in list(self._requests.items()):
                if leases.pop(service_id, None) is not None and not leases:
                    del self._requests[request_id]
            self._mark_dirty(service_id)

    def in_flight_requests(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._requests)

    def snapshot_state(self) -> dict[str, dict[str, object]]:
        """Live state of every known service, for the API and the dashboard."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            return {
                service_id: {
                    "in_flight": live.in_flight,
                    "ewma_latency_ms": live.ewma_latency_ms,
                    "error_rate": live.error_rate,
                    "breaker_state": live.breaker.state.value,
                    "breaker_allows": br.allows(live.breaker, now, self.breaker_config),
                    "anomaly": live.anomaly,
                }
                for service_id, live in self._services.items()
            }

    # -- internals (lock held) -------------------------------------------------------------

    def _live(self, service_id: str) -> _ServiceLive:
        live = self._services.get(service_id)
        if live is None:
            live = _ServiceLive(window=deque(maxlen=self.error_window))
            self._services[service_id] = live
        return live

    def _release(self, request_id: str, service_id: str, live: _ServiceLive) -> None:
        leases = self._requests.get(request_id)
        if leases is None or leases.pop(service_id, None) is None:
            return
        live.in_flight -= 1
        if not leases:
            del self._requests[request_id]

    def _expire(self, now: float) -> None:
        """Drop every lease whose deadline <= now."""
        expiry = self._expiry
        requests = self._requests
        while expiry and expiry[0][0] <= now:
            deadline, service_id, request_ids = heapq.heappop(expiry)
            live = self._services.get(service_id)
            dropped = 0
            for request_id in request_ids:
                leases = requests.get(request_id)
                # Stale: the lease was released, dropped, or renewed since.
                if leases is None or leases.get(service_id) != deadline:
                    continue
                del leases[service_id]
                if not leases:
                    del requests[request_id]
                dropped += 1
            if dropped and live is not None:
                live.in_flight -= dropped
                self._mark_dirty(service_id)

    def _fire_breaker_timers(self, now: float) -> None:
        timers = self._breaker_timers
        while timers and timers[0][0] <= now:
            self._mark_dirty(heapq.heappop(timers)[1])

    def _breaker_changed(self, service_id, old, new, transitions) -> None:
        cfg = self.breaker_config
        if new.state is BreakerState.OPEN:
            heapq.heappush(self._breaker_timers, (new.open_until, service_id))
        elif new.state is BreakerState.HALF_OPEN:
            probe_expiry = new.last_probe_at + cfg.probe_timeout_s
            heapq.heappush(self._breaker_timers, (probe_expiry, service_id))
        if new.state is not old.state:
            transitions.append((service_id, old.state, new.state))

    def _mark_dirty(self, service_id: str) -> None:
        for cache in self._caches.values():
            if cache.dirty is not None:
                cache.dirty.add(service_id)

    def _cache_for(self, snapshot: FleetSnapshot) -> _ViewCache:
        key = id(snapshot)
        cache = self._caches.get(key)
        if cache is None or cache.snapshot is not snapshot:
            cache = _ViewCache(snapshot=snapshot, dirty=None)
            self._caches[key] = cache
            while len(self._caches) > _VIEW_CACHE_SNAPSHOTS:
                self._caches.popitem(last=False)
        else:
            self._caches.move_to_end(key)
        return cache

    def _build_view(self, cache: _ViewCache, now: float) -> LiveView:
        snapshot = cache.snapshot
        cfg = self.breaker_config
        if cache.view is None or cache.dirty is None:
            n = len(snapshot)
            arrays = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n, dtype=bool))
            indices = range(n)
        else:
            old = cache.view
            arrays = (
                old.in_flight.copy(),
                old.ewma_latency_ms.copy(),
                old.error_rate.copy(),
                old.anomaly.copy(),
                old.breaker_allows.copy(),
            )
            index = snapshot.index
            indices = [index[s] for s in cache.dirty if s in index]
        in_flight, ewma, error_rate, anomaly, allows = arrays
        services = snapshot.services
        for i in indices:
            live = self._services.get(services[i].service_id)
            if live is None:
                in_flight[i] = ewma[i] = error_rate[i] = anomaly[i] = 0.0
                allows[i] = True
                continue
            in_flight[i] = max(live.in_flight, 0)
            ewma[i] = live.ewma_latency_ms
            error_rate[i] = live.error_rate
            anomaly[i] = live.anomaly
            allows[i] = br.allows(live.breaker, now, cfg)
        for array in arrays:
            array.flags.writeable = False
        return LiveView(
            in_flight=in_flight,
            ewma_latency_ms=ewma,
            error_rate=error_rate,
            anomaly=anomaly,
            breaker_allows=allows,
        )

    def _notify(self, transitions: list[tuple[str, BreakerState, BreakerState]]) -> None:
        if self.on_transition is None:
            return
        for service_id, old, new in transitions:
            self.on_transition(service_id, old, new)
