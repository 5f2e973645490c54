"""The smart-routing demo: one sample workload through every strategy, side by side.

Nothing is recorded: the workload goes straight to the engine with the live fleet and state,
so operators can compare strategies without touching history, metrics or in-flight counts.
"""

from __future__ import annotations

import random
import time

import numpy as np

from routing.core.balancing import jain_index
from routing.core.strategies import STRATEGY_NAMES
from routing.core.types import RouteRequest

WORKLOAD_SIZE = 200
_LEVELS = {"simple": (0.1, 0.3), "medium": (0.4, 0.6), "complex": (0.7, 0.95)}
_TYPES = ("inference", "analysis", "storage", "learning", "consensus")


def sample_workload(
    complexity: str, size: int = WORKLOAD_SIZE, seed: int = 7
) -> list[RouteRequest]:
    rng = random.Random(seed)
    low, high = _LEVELS[complexity]
    requests = []
    for i in range(size):
        request_type = rng.choice(_TYPES)
        requests.append(
            RouteRequest(
                request_type=request_type,
                priority=round(rng.uniform(0.1, 1.0), 2),
                complexity=round(rng.uniform(low, high), 2),
                key=f"user-{rng.randrange(50)}",
                anomaly_score=round(rng.random() * 0.3, 2) if i % 10 else 0.8,
                payload_size=int(200 * (1 + 10 * high)),
                tokens=(request_type, "payload"),
            )
        )
    return requests


def run_demo(router, complexity: str) -> dict:
    snapshot = router.snapshot()
    view = router.store.view(snapshot)
    workload = sample_workload(complexity)
    capacity = {s.service_id: s.max_capacity for s in snapshot.services}
    comparison = []
    for name in STRATEGY_NAMES:
        started = time.perf_counter()
        decisions = router.engine.route_batch(workload, snapshot, view, name, None)
        elapsed_ms = (time.perf_counter() - started) * 1000
        counts: dict[str, int] = {}
        concrete: dict[str, int] = {}
        unrouted = 0
        for d in decisions:
            if d.no_eligible_service:
                unrouted += 1  # no strategy chose: counted here, not in concrete_strategies
                continue
            for sid in d.selected[:1]:
                counts[sid] = counts.get(sid, 0) + 1
            concrete[d.strategy] = concrete.get(d.strategy, 0) + 1
        util = np.array([counts.get(sid, 0) / cap for sid, cap in capacity.items()])
        comparison.append(
            {
                "strategy": name,
                "distribution": dict(sorted(counts.items())),
                "concrete_strategies": concrete,
                "unrouted": unrouted,
                "load_balance_score": round(jain_index(util), 4),
                "mean_confidence": round(
                    float(np.mean([d.confidence for d in decisions])) if decisions else 0.0, 4
                ),
                "batch_ms": round(elapsed_ms, 3),
                "us_per_decision": round(elapsed_ms * 1000 / max(len(workload), 1), 2),
            }
        )
    best = max(comparison, key=lambda row: (row["unrouted"] == 0, row["load_balance_score"]))
    return {
        "complexity": complexity,
        "requests": len(workload),
        "services": len(snapshot),
        "comparison": comparison,
        "most_balanced": best["strategy"],
    }
