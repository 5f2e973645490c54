"""Small builders for fleets, views and requests used across the core tests."""

from __future__ import annotations

import os
import random

import numpy as np
from hypothesis import HealthCheck, settings

from routing.core.types import (
    FleetSnapshot,
    Health,
    LiveView,
    RouteRequest,
    ServiceSpec,
    ServiceStatus,
)

# Derandomised so CI is reproducible; CORE_HYPOTHESIS_EXAMPLES=500 for a deeper local run.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("CORE_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

TYPES = ("inference", "analysis", "etl", "search")
CAPABILITIES = ("gpu", "analysis", "processing", "vision", "nlp")


def service(
    service_id: str,
    service_type: str = "inference",
    capabilities: tuple[str, ...] = (),
    max_capacity: int = 100,
    weight: float = 1.0,
    status: ServiceStatus = ServiceStatus.ACTIVE,
    health: Health = Health.HEALTHY,
) -> ServiceSpec:
    return ServiceSpec(
        service_id=service_id,
        service_type=service_type,
        endpoint=f"http://{service_id}.internal:8000",
        capabilities=frozenset(capabilities),
        max_capacity=max_capacity,
        weight=weight,
        status=status,
        health=health,
    )


def uniform_fleet(n: int, capacity: int = 100, prefix: str = "svc") -> FleetSnapshot:
    return FleetSnapshot.build(
        [
            service(f"{prefix}-{i:03d}", TYPES[i % len(TYPES)], max_capacity=capacity)
            for i in range(n)
        ]
    )


def random_fleet(n: int, seed: int = 0) -> FleetSnapshot:
    rng = random.Random(seed)
    return FleetSnapshot.build(
        [
            service(
                f"svc-{i:03d}",
                TYPES[i % len(TYPES)],
                tuple(rng.sample(CAPABILITIES, rng.randint(0, 3))),
                max_capacity=rng.choice([10, 50, 100]),
            )
            for i in range(n)
        ]
    )


def view(
    n: int,
    in_flight=None,
    latency=None,
    error_rate=None,
    anomaly=None,
    allows=None,
) -> LiveView:
    def arr(values, default, dtype=np.float64):
        return np.full(n, default, dtype=dtype) if values is None else np.asarray(values, dtype)

    return LiveView(
        in_flight=arr(in_flight, 0.0),
        ewma_latency_ms=arr(latency, 0.0),
        error_rate=arr(error_rate, 0.0),
        anomaly=arr(anomaly, 0.0),
        breaker_allows=arr(allows, True, bool),
    )


def requests(n: int, seed: int = 0, with_capabilities: bool = False) -> list[RouteRequest]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        caps = (
            tuple(rng.sample(CAPABILITIES, 1)) if with_capabilities and rng.random() < 0.3 else ()
        )
        out.append(
            RouteRequest(
                request_type=rng.choice(TYPES),
                priority=rng.random(),
                complexity=rng.random(),
                capabilities=caps,
                key=f"user-{rng.randint(0, 500)}" if rng.random() < 0.5 else None,
                anomaly_score=rng.random() if rng.random() < 0.3 else None,
                payload_size=rng.randint(0, 10_000),
                tokens=tuple(rng.choice(["a", "b", "c", "d", "e"]) for _ in range(3)),
                payload={"i": i},
            )
        )
    return out
