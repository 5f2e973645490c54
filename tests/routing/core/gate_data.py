"""A planted routing problem: for each request type one service is fast and reliable."""

from __future__ import annotations

import random

from routing.core.gate import GateExample
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service

N_SERVICES = 8
TYPES = [f"type-{t}" for t in range(N_SERVICES)]


def planted_fleet() -> FleetSnapshot:
    # Same type, no capabilities: only what the gate learns per service tells them apart.
    return FleetSnapshot.build([service(f"svc-{i}", "worker") for i in range(N_SERVICES)])


def best_service(request_type: str) -> str:
    t = int(request_type.split("-")[1])
    return f"svc-{(3 * t + 1) % N_SERVICES}"


def planted_request(rng: random.Random, request_type: str | None = None) -> RouteRequest:
    return RouteRequest(
        request_type=request_type or rng.choice(TYPES),
        priority=rng.random(),
        complexity=rng.random(),
        payload_size=rng.randint(10, 5000),
        tokens=tuple(rng.choice("abcdefgh") for _ in range(rng.randint(0, 4))),
    )


def planted_history(n: int, seed: int = 0) -> list[GateExample]:
    """Uniformly explored history: the best service succeeds fast, others slow or failing."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        request = planted_request(rng)
        chosen = f"svc-{rng.randrange(N_SERVICES)}"
        if chosen == best_service(request.request_type):
            success, latency = rng.random() < 0.95, rng.gauss(20, 4)
        else:
            success, latency = rng.random() < 0.7, rng.gauss(60, 12)
        out.append(GateExample(request, chosen, success, max(latency, 1.0)))
    return out
