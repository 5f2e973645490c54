"""Types shared by every part of the routing core and by the state backends.

A :class:`FleetSnapshot` is the immutable picture of the registry that the Django side builds
once per registry version. A :class:`LiveView` is the live state of that fleet at one moment,
as parallel numpy arrays in the snapshot's service order, so strategies can work vectorised.
A :class:`Decision` is what the engine returns for one request.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple, Protocol

import numpy as np


class ServiceStatus(enum.StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"
    DISABLED = "disabled"


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One registered service as the router sees it."""

    service_id: str
    service_type: str
    endpoint: str
    capabilities: frozenset[str]
    max_capacity: int
    weight: float = 1.0
    status: ServiceStatus = ServiceStatus.ACTIVE
    health: Health = Health.UNKNOWN


@dataclass(frozen=True)
class FleetSnapshot:
    """An immutable fleet, indexed 0..n-1 in ``services`` order.

    Build it with :meth:`build`; the derived arrays are computed once so strategies never loop
    over Python objects on the hot path.
    """

    services: tuple[ServiceSpec, ...]
    version: int = 0
    index: Mapping[str, int] = field(default_factory=dict)
    capacity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Services routable by status and health (active and not unhealthy).
    routable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    capability_names: tuple[str, ...] = ()
    # capability_matrix[i, c] is True when service i offers capability_names[c].
    capability_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    @classmethod
    def build(cls, services: Sequence[ServiceSpec], version: int = 0) -> FleetSnapshot:
        services = tuple(sorted(services, key=lambda s: s.service_id))
        caps = tuple(sorted({c for s in services for c in s.capabilities}))
        cap_index = {c: j for j, c in enumerate(caps)}
        matrix = np.zeros((len(services), len(caps)), dtype=bool)
        for i, spec in enumerate(services):
            for cap in spec.capabilities:
                matrix[i, cap_index[cap]] = True
        return cls(
            services=services,
            version=version,
            index={s.service_id: i for i, s in enumerate(services)},
            capacity=np.array([s.max_capacity for s in services], dtype=np.float64),
            weight=np.array([s.weight for s in services], dtype=np.float64),
            routable=np.array(
                [
                    s.status == ServiceStatus.ACTIVE and s.health != Health.UNHEALTHY
                    for s in services
                ],
                dtype=bool,
            ),
            capability_names=caps,
            capability_matrix=matrix,
        )

    def __len__(self) -> int:
        return len(self.services)

    @property
    def service_ids(self) -> tuple[str, ...]:
        return tuple(s.service_id for s in self.services)


@dataclass(frozen=True, slots=True)
class LiveView:
    """Live state for a snapshot's services at one moment (arrays in snapshot order).

    ``breaker_allows`` is False for a service whose breaker is open (or half-open with no probe
    slot left); the engine treats it as ineligible. ``ramp`` (slow start) is None, or the
    share in (0, 1] each service may have while it ramps up after joining or recovering: the
    engine leaves a ramping service out of a request's candidates with probability
    ``1 - ramp``, never when it is the request's only candidate. ``cooling`` is None, or True
    for a service that answered 429 with ``Retry-After`` and asked for nothing until then: the
    engine leaves it out, panic routing included (as LiteLLM's router cools a deployment down).
    """

    in_flight: np.ndarray  # float64, requests currently routed and not yet finished
    ewma_latency_ms: np.ndarray  # float64, smoothed latency; 0 when nothing measured yet
    error_rate: np.ndarray  # float64 in [0, 1] over the recent window
    anomaly: np.ndarray  # float64 in [0, 1]
    breaker_allows: np.ndarray  # bool
    ramp: np.ndarray | None = None  # float64 in (0, 1], or None: nobody ramping
    cooling: np.ndarray | None = None  # bool, or None: nobody cooling down

    @classmethod
    def idle(cls, n: int) -> LiveView:
        return cls(
            in_flight=np.zeros(n),
            ewma_latency_ms=np.zeros(n),
            error_rate=np.zeros(n),
            anomaly=np.zeros(n),
            breaker_allows=np.ones(n, dtype=bool),
        )


class RouteRequest(NamedTuple):
    """One request to route, already validated by the API layer.

    Requests and decisions are named tuples, not frozen dataclasses: as immutable, read as
    fast, and built in one C call, which a batch does thousands of times (a slotted frozen
    dataclass pays a descriptor call per field: ~4x the cost, see :func:`build_many`)."""

    request_type: str = ""
    priority: float = 0.5
    complexity: float = 0.5
    capabilities: tuple[str, ...] = ()
    key: str | None = None
    anomaly_score: float | None = None
    payload_size: int = 0
    tokens: tuple[str, ...] = ()
    payload: Any = None


class Decision(NamedTuple):
    """The engine's answer for one request."""

    selected: tuple[str, ...]
    scores: Mapping[str, float]
    confidence: float
    strategy: str
    requested_strategy: str
    reason: str
    no_eligible_service: bool = False
    latency_ms: float = 0.0
    # Probability with which ``selected[0]`` was chosen given the request and the state
    # (1.0 for a deterministic strategy; None when not computed), and the services that were
    # eligible for it: what off-policy evaluation of another policy needs from the log.
    propensity: float | None = None
    candidates: tuple[str, ...] = ()
    # Panic routing (every able service's breaker open, routed among them anyway): the
    # dispatch must not be refused by those breakers (see StateStore.record_routed_many).
    panic: bool = False


def round6(x) -> float:
    """``x`` to 6 decimal places, as answers and history show scores and confidences:
    ``round(x * 1e6) / 1e6``. The same value as ``round(x, 6)`` (not one difference in a
    million random draws in [0, 1]; beyond 1e9, where the product would lose digits, it is
    ``round(x, 6)``), at ~8x fewer instructions: ``round(x, 6)`` formats the decimal expansion,
    and a batch rounds ~3 numbers per decision. NaN and infinities come back unchanged."""
    x = float(x)
    if x - x != 0.0 or not -1e9 < x < 1e9:
        return x if x - x != 0.0 else round(x, 6)
    return round(x * 1e6) / 1e6


def build_many(cls, *columns: Iterable) -> list:
    """``[cls(*row) for row in zip(*columns)]`` for a named tuple ``cls``, every field given:
    one C call per item (``tuple.__new__``), not the generated ``__new__`` with its
    defaults. A batch builds its requests, decisions and routed records this way."""
    return list(map(tuple.__new__, repeat(cls), zip(*columns, strict=True)))


class LiveStateStore(Protocol):
    """Where live per-service state lives: in process (local) or in Redis (shared).

    Implementations must be safe to call from many threads; the Redis one makes every update
    atomic and costs at most one round trip per routed request.
    """

    def view(self, snapshot: FleetSnapshot) -> LiveView:
        """The current live state of the snapshot's services."""

    def record_routed(self, request_id: str, service_ids: Sequence[str]) -> None:
        """A request was routed to these services: count it in flight."""

    def record_routed_many(
        self, items: Sequence[tuple[str, Sequence[str]]], *, forced: Collection[str] = ()
    ) -> list[tuple[str, str]]:
        """``record_routed`` for ``(request id, service ids)`` pairs (a batch), in order;
        the ``(request id, service id)`` pairs a breaker refused. Requests in ``forced``
        (panic routing) are never refused."""

    def record_outcome(
        self, request_id: str, service_id: str, success: bool, latency_ms: float | None
    ) -> BreakerState | None:
        """The request finished: release it, update EWMA and the breaker.

        Returns the new breaker state when this outcome changed it, else None.
        """

    def set_anomaly(self, service_id: str, score: float) -> None:
        """An external detector (or the telemetry job) reports a service's anomaly score."""
