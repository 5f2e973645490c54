"""Per-operation latency of the live-state backends, local vs Redis, in the same run.

    python -m tests.performance.bench_state [--services 64] [--ops 5000]
        [--redis-url URL | --spawn-redis]

Prints JSON: p50/p99 (microseconds) of ``record_routed``, ``record_outcome`` and ``view()``
for each backend at 64 services. For Redis, ``record_routed`` is also measured as the router
does it (queued on the caller's pipeline with a history ``XADD``, then one ``execute``) and
for a 500-request batch (one script call); ``view()`` both as served from the 20 ms cache and
as a forced refresh (one script call for all services). Redis defaults to ``REDIS_URL``, then
``TEST_REDIS_URL``, then 127.0.0.1:6379; keys use a throwaway prefix that is deleted after.
``--spawn-redis`` starts a private ``redis-server`` on a free port instead, so the server-side
time per script call (``server_us_per_call``, from ``INFO commandstats``) is this run's alone.

Both stores use one fixed lease of ``BENCH_LEASE_S`` (a long one): every outcome the benchmark
reports then finds its lease still held, so ``record_outcome`` always measures a release, as a
client that reports does. The routed script still derives each lease from the service's EWMA
(the same work at any lease setting); only the outcome of that rule is fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from routing.core.state import LeaseConfig, LocalStateStore
from routing.core.types import FleetSnapshot, ServiceSpec
from telemetry.state.redis_store import RedisStateStore, make_client
from tests.support.net import free_port
from tests.support.stats import percentile

BENCH_LEASE_S = 3600.0
BENCH_LEASE = LeaseConfig.fixed(BENCH_LEASE_S)


def _fleet(n: int) -> FleetSnapshot:
    return FleetSnapshot.build(
        [
            ServiceSpec(f"svc-{i:03d}", "bench", f"http://127.0.0.1:{9000 + i}", frozenset(), 100)
            for i in range(n)
        ]
    )


def _measure(op: Callable[[int], object], ops: int, warmup: int = 200) -> dict[str, float]:
    for i in range(warmup):
        op(-1 - i)
    samples = []
    clock = time.perf_counter_ns
    for i in range(ops):
        started = clock()
        op(i)
        samples.append((clock() - started) / 1000.0)
    samples.sort()
    return {
        "p50_us": round(percentile(samples, 50), 2),
        "p99_us": round(percentile(samples, 99), 2),
        "mean_us": round(sum(samples) / len(samples), 2),
        "ops": ops,
    }


def _bench_store(store, snapshot: FleetSnapshot, ops: int, tag: str) -> dict[str, dict]:
    ids = snapshot.service_ids
    n = len(ids)
    return {
        "record_routed": _measure(
            lambda i: store.record_routed(f"{tag}r{i}", (ids[i % n], ids[(i + 7) % n])), ops
        ),
        "record_outcome": _measure(
            lambda i: store.record_outcome(f"{tag}r{i}", ids[i % n], i % 10 != 0, 12.5), ops
        ),
        "view": _measure(lambda i: store.view(snapshot), ops),
    }


def _evalsha_usec(client) -> tuple[int, float]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0.0))


def _with_server_time(client, measure: Callable[[], dict]) -> dict:
    """Run ``measure`` and add the server's mean time per EVALSHA during it."""
    calls_before, usec_before = _evalsha_usec(client)
    result = measure()
    calls_after, usec_after = _evalsha_usec(client)
    if calls_after > calls_before:
        result["server_us_per_call"] = round(
            (usec_after - usec_before) / (calls_after - calls_before), 2
        )
    return result


def _bench_redis(url: str, snapshot: FleetSnapshot, ops: int) -> dict[str, object]:
    prefix = f"bench:state:{uuid.uuid4().hex[:12]}:"
    client = make_client(url)
    try:
        store = RedisStateStore(client, key_prefix=prefix, lease=BENCH_LEASE)
        if store.degraded:
            return {"error": store.status()["last_error"]}
        ids, n = snapshot.service_ids, len(snapshot)
        results: dict[str, object] = {
            "record_routed": _with_server_time(
                client,
                lambda: _measure(
                    lambda i: store.record_routed(f"r{i}", (ids[i % n], ids[(i + 7) % n])), ops
                ),
            ),
            "record_outcome": _with_server_time(
                client,
                lambda: _measure(
                    lambda i: store.record_outcome(f"r{i}", ids[i % n], i % 10 != 0, 12.5), ops
                ),
            ),
            "view": _measure(lambda i: store.view(snapshot), ops),
        }

        def routed_on_pipeline(i: int) -> None:
            pipe = store.pipeline()
            pipe.xadd(f"{prefix}history", {"request_id": f"p{i}"}, maxlen=10_000)
            store.record_routed(f"p{i}", (ids[i % n], ids[(i + 7) % n]), pipe=pipe)
            store.execute(pipe)

        results["record_routed_on_caller_pipeline_with_xadd"] = _with_server_time(
            client, lambda: _measure(routed_on_pipeline, ops)
        )
        batch = [(f"b{i}", (ids[i % n],)) for i in range(500)]
        results["record_routed_many_500_requests"] = _with_server_time(
            client,
            lambda: _measure(
                lambda i: store.record_routed_many([(f"{i}{r}", s) for r, s in batch]),
                max(10, ops // 50),
                warmup=5,
            ),
        )
        fresh = RedisStateStore(client, key_prefix=prefix, view_max_age_s=0.0, lease=BENCH_LEASE)
        results["view_refresh"] = _with_server_time(
            client, lambda: _measure(lambda i: fresh.view(snapshot), ops)
        )
        results["server"] = client.info("server").get("redis_version")
        results["degraded_during_run"] = store.degraded or fresh.degraded
        return results
    finally:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _spawn_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--spawn-redis: redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = make_client(url)
    for _ in range(500):
        try:
            client.ping()
            break
        except Exception:
            time.sleep(0.01)
    client.close()
    return process, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=64)
    parser.add_argument("--ops", type=int, default=5000)
    default_url = (
        os.environ.get("REDIS_URL")
        or os.environ.get("TEST_REDIS_URL")
        or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--redis-url", default=default_url)
    parser.add_argument("--spawn-redis", action="store_true", help="use a private redis-server")
    args = parser.parse_args(argv)
    process = None
    workdir = tempfile.mkdtemp(prefix="moe-bench-")
    if args.spawn_redis:
        process, args.redis_url = _spawn_redis(workdir)
    snapshot = _fleet(args.services)
    report = {
        "command": "python -m tests.performance.bench_state " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m_before": round(os.getloadavg()[0], 2),
        },
        "services": args.services,
        "lease_s": BENCH_LEASE_S,
        "local": _bench_store(
            LocalStateStore(clock=time.time, lease=BENCH_LEASE), snapshot, args.ops, "l"
        ),
    }
    try:
        report["redis"] = _bench_redis(args.redis_url, snapshot, args.ops)
        report["redis_server"] = "private (--spawn-redis)" if process else args.redis_url
    finally:
        if process is not None:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
