"""What the live feed costs the route path: ``publish_routes`` with 0 and with 10 dashboards.

    .venv/bin/python -m tests.performance.bench_events          # in-memory channel layer
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m tests.performance.bench_events
    .venv/bin/python -m tests.performance.bench_events --json   # one JSON object, no table

The calling thread plays the route path. Three phases per dashboard count, in one run:

- ``route``: in-process decisions (``RoutingEngine.route``, power_of_two over 64 services),
  each followed by the ``publish_routes`` call the router makes; the ``none`` row is the same
  loop without publishing, the baseline the overhead is measured against;
- ``single``: ``publish_routes([item])`` alone, timed call by call;
- ``batch``: ``publish_routes`` with 100 items per call (what ``/route/batch`` does).

A second thread plays the ASGI server: its event loop runs the real ``RoutingFeedConsumer``
for each connected dashboard (through Channels' ``WebsocketCommunicator``) and reads all they
send, so flushing, fan-out and the consumers' work compete with the route path for the GIL as
they would in one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import threading
import time

from tests.support.stats import percentile


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moe_project.settings")
    import django

    django.setup()
    from telemetry import consumers

    # The hello's fleet summary reads the database; the benchmark needs none.
    async def no_fleet_summary():
        return None

    consumers.fleet_summary = no_fleet_summary


class ServerThread:
    """An event loop in a thread, hosting ``n`` connected feed consumers and their readers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clients: list = []
        self.readers: list = []
        self.messages = 0
        self.items = 0
        self.dropped = 0

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def connect(self, n: int) -> None:
        from channels.testing import WebsocketCommunicator
        from django.contrib.auth.models import User

        from telemetry.consumers import RoutingFeedConsumer

        for _ in range(n):
            client = WebsocketCommunicator(RoutingFeedConsumer.as_asgi(), "/ws/routing")
            client.scope["user"] = User(username="bench", is_active=True, is_staff=True)
            accepted, _ = await client.connect(timeout=10)
            assert accepted
            await client.receive_from(timeout=10)  # hello
            self.clients.append(client)
            self.readers.append(asyncio.ensure_future(self._read(client)))

    async def _read(self, client) -> None:
        import orjson

        while True:
            output = await client.output_queue.get()
            if output.get("type") != "websocket.send":
                return
            message = orjson.loads(output["text"])
            if message["type"] == "route":
                self.messages += 1
                self.items += len(message["events"])
                self.dropped += message["dropped"]

    async def disconnect(self) -> None:
        for reader in self.readers:
            reader.cancel()
        for client in self.clients:
            await client.disconnect()
        self.clients, self.readers = [], []

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _item(i: int) -> dict:
    return {
        "request_id": f"bench{i:016x}",
        "selected_services": ["svc-a"],
        "routing_strategy": "power_of_two",
        "latency_ms": 0.012,
        "no_eligible_service": False,
    }


@functools.cache
def make_engine():
    from routing.core.engine import RoutingEngine
    from routing.core.types import FleetSnapshot, LiveView, RouteRequest, ServiceSpec

    specs = [
        ServiceSpec(
            service_id=f"svc-{i:02d}",
            service_type="inference",
            endpoint=f"http://svc-{i:02d}.internal:8000",
            capabilities=frozenset({"inference"}),
            max_capacity=100 + i,
        )
        for i in range(64)
    ]
    snapshot = FleetSnapshot.build(specs)
    return RoutingEngine(), snapshot, LiveView.idle(len(snapshot)), RouteRequest("inference")


def route_rate(publisher, seconds: float) -> float:
    """Decisions per second, each published (or not, when ``publisher`` is None)."""
    engine, snapshot, view, request = make_engine()
    route = engine.route
    publish = publisher.publish_routes if publisher is not None else None
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            decision = route(request, snapshot, view, "power_of_two")
            if publish is not None:
                publish(
                    [
                        {
                            "request_id": f"r{done}",
                            "selected_services": list(decision.selected),
                            "routing_strategy": decision.strategy,
                            "latency_ms": decision.latency_ms,
                            "no_eligible_service": decision.no_eligible_service,
                        }
                    ]
                )
            done += 1
    return done / (time.perf_counter() - started)


def measure(consumers: int, seconds: float, batch: int) -> dict:
    """Single-item calls for ``seconds``, then batch calls for ``seconds``; dashboards listen."""
    from telemetry.events import FeedPublisher

    publisher = FeedPublisher()
    server = ServerThread()
    try:
        server.run(server.connect(consumers))
        items = [_item(i) for i in range(100_000)]
        batch_items = items[:batch]
        for item in items[:2000]:  # warm up: start the sender, fill caches
            publisher.publish_routes([item])

        # Alternating short slices with and without publishing: the machine's drift (other
        # processes, frequency scaling) hits both alike, and the medians compare them.
        with_feed, without = [], []
        for _ in range(max(2, int(seconds / 0.5))):
            with_feed.append(route_rate(publisher, 0.25))
            without.append(route_rate(None, 0.25))
        routes_per_s = statistics.median(with_feed)
        baseline_per_s = statistics.median(without)

        timings: list[int] = []
        clock = time.perf_counter_ns
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for item in items:  # many flush intervals pass while this runs
                t0 = clock()
                publisher.publish_routes([item])
                timings.append(clock() - t0)
        single_seconds = time.perf_counter() - started

        batches = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(100):
                publisher.publish_routes(batch_items)
            batches += 100
        batch_seconds = time.perf_counter() - started

        time.sleep(publisher.interval * 4)  # let the last flushes arrive
        server.run(server.disconnect())
    finally:
        publisher.close()
        server.close()
    timings.sort()
    per = max(consumers, 1)
    elapsed = seconds + single_seconds + batch_seconds
    return {
        "consumers": consumers,
        "routes_per_s": routes_per_s,
        "baseline_per_s": baseline_per_s,
        "single_calls_per_s": len(timings) / single_seconds,
        "single_mean_us": statistics.fmean(timings) / 1000,
        "single_p50_us": percentile(timings, 50) / 1000,
        "single_p99_us": percentile(timings, 99) / 1000,
        "batch_items_per_s": batches * batch / batch_seconds,
        "batch_call_us": batch_seconds / batches * 1e6,
        "messages_per_s_per_consumer": server.messages / per / elapsed,
        "items_delivered_per_consumer": server.items / per,
        "dropped_per_consumer": server.dropped / per,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase and run")
    parser.add_argument("--batch", type=int, default=100, help="items per batch call")
    parser.add_argument("--consumers", default="0,10", help="comma-separated dashboard counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object, no table")
    args = parser.parse_args(argv)
    _setup_django()
    from django.conf import settings

    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    route_rate(None, 1.0)  # warm up the engine and its per-snapshot caches
    rows = [
        measure(int(n), args.seconds, args.batch) for n in args.consumers.split(",") if n.strip()
    ]
    if args.json:
        report = {
            "benchmark": "bench_events",
            "command": "python -m tests.performance.bench_events " + " ".join(argv or sys.argv[1:]),
            "layer": layer,
            "seconds_per_phase": args.seconds,
            "batch_items": args.batch,
            "runs": [
                {**r, "overhead": round(1 - r["routes_per_s"] / r["baseline_per_s"], 4)}
                for r in rows
            ],
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"layer: {layer}; {args.seconds}s per phase; batch calls of {args.batch} items")
    print(
        f"{'dashboards':>10} {'no feed':>9} {'routes/s':>9} {'overhead':>8} {'calls/s':>10} "
        f"{'p50 us':>6} "
        f"{'p99 us':>6} {'batch call us':>13} {'msgs/s/dash':>11} {'items/dash':>10} "
        f"{'dropped/dash':>13}"
    )
    for r in rows:
        overhead = 1 - r["routes_per_s"] / r["baseline_per_s"]
        print(
            f"{r['consumers']:>10} {r['baseline_per_s']:>9,.0f} {r['routes_per_s']:>9,.0f} "
            f"{overhead:>8.1%} "
            f"{r['single_calls_per_s']:>10,.0f} {r['single_p50_us']:>6.2f} "
            f"{r['single_p99_us']:>6.2f} {r['batch_call_us']:>13.2f} "
            f"{r['messages_per_s_per_consumer']:>11.1f} "
            f"{r['items_delivered_per_consumer']:>10,.0f} {r['dropped_per_consumer']:>13,.0f}"
        )

    return 0


if __name__ == "__main__":
    sys.exit(main())
