"""Benchmark of the routing core: ``python -m tests.performance.bench_core [--quick] [--seed N]``
(``--batch-only N``: only the batch figures, at N requests per batch).

Prints one JSON object to stdout::

    {"decision": [{"strategy", "services", "p50_us", "p99_us"}, ...],
     "batch": [{"strategy", "requests", "decisions_per_s"}, ...],
     "load_balance": [{"strategy", "score", "random_baseline"}, ...],
     "outcome": {"learner_observe": {...}, "store_route_and_outcome": {...}}}

- decision: ``RoutingEngine.route`` timed one call at a time (perf_counter_ns) for every
  strategy at 8, 64 and 256 services, over a mix of requests on a part-loaded fleet;
- batch: ``RoutingEngine.route_batch`` on 10,000 requests at 64 services (best of 10);
- load_balance: a simulated skewed workload at 64 services (capacities 50-400, weights
  proportional to capacity as the rebalance job sets them, per-service latencies that differ,
  Zipf-distributed keys, requests any service may serve, Poisson arrivals at ~60% of total
  capacity, requests finishing after their service's latency through a LocalStateStore on a
  simulated clock).
  Score: Jain's index of each service's time-averaged utilisation (in-flight / capacity); the
  baseline routes the same arrivals uniformly at random among eligible services.
- outcome: what a reported outcome costs in process, one call at a time: the learner's
  ``observe``, and a local store's route + outcome (leases, error window, breaker).

Progress and the machine description go to stderr. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable

import numpy as np

from routing.core.balancing import jain_index
from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.learning import OutcomeLearner
from routing.core.state import LeaseConfig, LocalStateStore
from routing.core.strategies import STRATEGY_NAMES
from routing.core.types import FleetSnapshot, LiveView, RouteRequest, ServiceSpec
from tests.support.stats import percentile

TYPES = ("inference", "analysis", "etl", "search")
REQUEST_TYPES = TYPES + ("vision", "translate", "embed", "rank")
CAPABILITIES = ("gpu", "analysis", "processing", "vision", "nlp", "search")
SIZES = (8, 64, 256)
# Services' typical latencies differ by a lognormal factor with this sigma (~10%).
LATENCY_SPREAD = 0.1


def make_fleet(n: int, rng: random.Random, capacity: Callable[[int], int]) -> FleetSnapshot:
    specs = []
    for i in range(n):
        cap = capacity(i)
        specs.append(
            ServiceSpec(
                service_id=f"svc-{i:03d}",
                service_type=TYPES[i % len(TYPES)],
                endpoint=f"http://svc-{i:03d}.internal:8000",
                capabilities=frozenset(rng.sample(CAPABILITIES, 2)) | {"processing"},
                max_capacity=cap,
            )
        )
    return FleetSnapshot.build(specs, version=1)


def busy_view(snapshot: FleetSnapshot, rng: random.Random) -> LiveView:
    n = len(snapshot)
    return LiveView(
        in_flight=np.floor(snapshot.capacity * np.array([rng.uniform(0, 0.5) for _ in range(n)])),
        ewma_latency_ms=np.array([rng.uniform(5, 50) for _ in range(n)]),
        error_rate=np.array([rng.uniform(0, 0.05) for _ in range(n)]),
        anomaly=np.array([rng.uniform(0, 0.3) for _ in range(n)]),
        breaker_allows=np.array([rng.random() > 0.05 for _ in range(n)]),
    )


def mixed_requests(count: int, rng: random.Random) -> list[RouteRequest]:
    out = []
    for i in range(count):
        roll = rng.random()
        out.append(
            RouteRequest(
                request_type=rng.choice(REQUEST_TYPES),
                priority=rng.random(),
                complexity=rng.random(),
                capabilities=("processing",) if roll < 0.3 else (),
                key=f"user-{rng.randrange(5000)}" if roll < 0.6 else None,
                anomaly_score=rng.random() if rng.random() < 0.2 else None,
                payload_size=rng.randrange(100, 20_000),
                tokens=tuple(rng.choice(("alpha", "beta", "gamma", "delta")) for _ in range(4)),
                payload={"i": i},
            )
        )
    return out


def bench_decisions(calls: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pool = mixed_requests(2000, rng)
    out = []
    for n in SIZES:
        snapshot = make_fleet(n, rng, lambda i: 1000)
        view = busy_view(snapshot, rng)
        engine = RoutingEngine(EngineConfig(p2c_seed=seed))
        for strategy in STRATEGY_NAMES:
            route = engine.route
            for request in pool[:300]:  # warm caches (ring, gate scorer, masks)
                route(request, snapshot, view, strategy)
            timings = []
            clock = time.perf_counter_ns
            for i in range(calls):
                request = pool[i % len(pool)]
                t0 = clock()
                route(request, snapshot, view, strategy)
                timings.append(clock() - t0)
            timings.sort()
            out.append(
                {
                    "strategy": strategy,
                    "services": n,
                    "p50_us": round(percentile(timings, 50) / 1e3, 1),
                    "p99_us": round(percentile(timings, 99) / 1e3, 1),
                }
            )
            print(f"decision {strategy:18s} n={n:3d} {out[-1]}", file=sys.stderr)
    return out


def bench_outcomes(count: int, seed: int) -> dict:
    """What one reported outcome costs in process: the learner's ``observe`` (8 services of
    one type, rewards of an 80% service) and a local store's route + outcome pair (the
    breaker and the error window; one service)."""
    rng = random.Random(seed)
    learner = OutcomeLearner(seed=seed)
    outcomes = [
        (f"svc-{rng.randrange(8)}", "inference", rng.random(), float(rng.random() < 0.8))
        for _ in range(count)
    ]
    clock = time.perf_counter_ns
    observe = learner.observe
    observed = []
    for outcome in outcomes:
        t0 = clock()
        observe(*outcome)
        observed.append(clock() - t0)
    store = LocalStateStore()
    reported = []
    for i in range(count):
        t0 = clock()
        store.record_routed(f"r{i}", ["svc"])
        store.record_outcome(f"r{i}", "svc", rng.random() < 0.9, 100.0)
        reported.append(clock() - t0)
    out = {}
    for name, timings in (("learner_observe", observed), ("store_route_and_outcome", reported)):
        timings.sort()
        out[name] = {
            "calls": count,
            "p50_us": round(percentile(timings, 50) / 1e3, 1),
            "p99_us": round(percentile(timings, 99) / 1e3, 1),
        }
        print(f"outcome {name:24s} {out[name]}", file=sys.stderr)
    return out


def bench_batches(count: int, repeats: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    snapshot = make_fleet(64, rng, lambda i: 2 * count)
    view = busy_view(snapshot, rng)
    requests = mixed_requests(count, rng)
    engine = RoutingEngine(EngineConfig(p2c_seed=seed))
    out = []
    for strategy in STRATEGY_NAMES:
        engine.route_batch(requests[:500], snapshot, view, strategy)
        best = best_cpu = math.inf
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            engine.route_batch(requests, snapshot, view, strategy)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        out.append({"strategy": strategy, "requests": count, "decisions_per_s": int(count / best)})
        # CPU-time rate on stderr: on a shared host it shows what the code costs when the
        # wall-clock figure is inflated by other processes.
        cpu_rate = int(count / max(best_cpu, 1e-9))
        print(f"batch {strategy:18s} {out[-1]} cpu-time rate {cpu_rate}/s", file=sys.stderr)
    return out


def zipf_choice(rng: random.Random, items: int, s: float) -> Callable[[], int]:
    weights = [1.0 / (k + 1) ** s for k in range(items)]
    total = sum(weights)
    cumulative = list(np.cumsum(weights) / total)
    return lambda: min(items - 1, int(np.searchsorted(cumulative, rng.random())))


def simulate(strategy: str | None, arrivals: int, seed: int) -> float:
    """Jain's index of time-averaged utilisation; ``strategy=None`` is uniform random."""
    rng = random.Random(seed)
    capacities = [rng.choice((50, 100, 200, 400)) for _ in range(64)]
    mean_cap = sum(capacities) / len(capacities)
    specs = [
        ServiceSpec(
            service_id=f"svc-{i:03d}",
            service_type=TYPES[i % len(TYPES)],
            endpoint=f"http://svc-{i:03d}.internal:8000",
            capabilities=frozenset({CAPABILITIES[i % len(CAPABILITIES)]}),
            max_capacity=capacities[i],
            weight=capacities[i] / mean_cap,
        )
        for i in range(64)
    ]
    snapshot = FleetSnapshot.build(specs, version=1)
    base_latency = {s.service_id: 20.0 * rng.lognormvariate(0, LATENCY_SPREAD) for s in specs}
    now = [0.0]
    # Every request reports its outcome here: leases never need to expire on their own.
    forever = LeaseConfig(default_s=3600.0, factor=1.0, min_s=3600.0, max_s=3600.0)
    store = LocalStateStore(clock=lambda: now[0] / 1000.0, lease=forever)
    engine = RoutingEngine(EngineConfig(p2c_seed=seed))
    next_type = zipf_choice(rng, len(REQUEST_TYPES), 1.2)
    next_key = zipf_choice(rng, 2000, 1.1)
    fanout = 2 if strategy == "top_k" else 1
    # Offered load ~60% of capacity: rate * mean latency = 0.6 * total capacity.
    rate_per_ms = 0.6 * sum(capacities) / 20.0 / fanout
    finishing: list[tuple[float, str, str, float]] = []
    util_sum = np.zeros(len(snapshot))
    samples = 0
    warmup = arrivals // 5
    ids = snapshot.service_ids
    for n in range(arrivals):
        now[0] += rng.expovariate(rate_per_ms)
        while finishing and finishing[0][0] <= now[0]:
            _, rid, sid, latency = heapq.heappop(finishing)
            store.record_outcome(rid, sid, True, latency)
        view = store.view(snapshot)
        # No type: any service may serve it, so this measures balancing among services that
        # are interchangeable for the request (with types, each type's pool is balanced on
        # its own and the fleet-wide index mostly reflects the Zipf mix of types).
        next_type()  # kept so the random stream (keys, latencies) matches earlier runs
        request = RouteRequest(
            key=f"user-{next_key()}",
            priority=rng.random(),
            complexity=rng.random(),
        )
        if strategy is None:
            open_ = np.flatnonzero(view.in_flight < snapshot.capacity)
            selected = (ids[int(open_[rng.randrange(len(open_))])],) if len(open_) else ()
        else:
            selected = engine.route(request, snapshot, view, strategy, top_k=fanout).selected
        rid = f"r{n}"
        if selected:
            store.record_routed(rid, selected)
        for sid in selected:
            latency = base_latency[sid] * rng.lognormvariate(0, 0.3)
            heapq.heappush(finishing, (now[0] + latency, rid, sid, latency))
        if n >= warmup and n % 10 == 0:
            util_sum += view.in_flight / snapshot.capacity
            samples += 1
    return jain_index(util_sum / max(samples, 1))


def bench_load_balance(arrivals: int, seed: int) -> list[dict]:
    baseline = round(simulate(None, arrivals, seed), 4)
    out = []
    for strategy in STRATEGY_NAMES:
        score = round(simulate(strategy, arrivals, seed), 4)
        out.append({"strategy": strategy, "score": score, "random_baseline": baseline})
        print(f"load_balance {strategy:18s} {out[-1]}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (smoke test only)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-only",
        type=int,
        metavar="N",
        help="only the batch figures, at N requests per batch (e.g. 1000, the HTTP batch size)",
    )
    args = parser.parse_args(argv)
    if args.batch_only:
        print(json.dumps({"batch": bench_batches(args.batch_only, 10, args.seed)}))
        return 0
    # (timed single decisions per case, batch size, batch repeats, simulated arrivals)
    quick, full = (50, 200, 1, 300), (5000, 10_000, 10, 20_000)
    calls, batch, repeats, arrivals = quick if args.quick else full
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} "
        f"python={platform.python_version()} numpy={np.__version__}",
        file=sys.stderr,
    )
    result = {
        "decision": bench_decisions(calls, args.seed),
        "batch": bench_batches(batch, repeats, args.seed),
        "load_balance": bench_load_balance(arrivals, args.seed),
        "outcome": bench_outcomes(calls, args.seed),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
