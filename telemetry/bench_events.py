"""What the live feed costs the route path: ``publish_routes`` with 0 and with 10 dashboards.

    .venv/bin/python -m telemetry.bench_events                 # in-memory channel layer
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m telemetry.bench_events

The calling thread plays the route path: it calls ``publish_routes`` as the router does (one
item per routed request, or one call per batch). A second thread plays the ASGI server: its
event loop runs the real ``RoutingFeedConsumer`` for each connected dashboard (through
Channels' ``WebsocketCommunicator``) and reads everything they send, so flushing, fan-out and
the consumers' work compete with the route path for the GIL as they would in one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time


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
            client.scope["user"] = User(username="bench", is_active=True)
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
    return {
        "consumers": consumers,
        "single_calls_per_s": len(timings) / single_seconds,
        "single_mean_us": statistics.fmean(timings) / 1000,
        "single_p50_us": timings[len(timings) // 2] / 1000,
        "single_p99_us": timings[int(len(timings) * 0.99)] / 1000,
        "batch_items_per_s": batches * batch / batch_seconds,
        "batch_call_us": batch_seconds / batches * 1e6,
        "messages_per_s_per_consumer": server.messages / per / (single_seconds + batch_seconds),
        "items_delivered_per_consumer": server.items / per,
        "dropped_per_consumer": server.dropped / per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase and run")
    parser.add_argument("--batch", type=int, default=100, help="items per batch call")
    parser.add_argument("--consumers", default="0,10", help="comma-separated dashboard counts")
    args = parser.parse_args()
    _setup_django()
    from django.conf import settings

    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"layer: {layer}; {args.seconds}s of single-item calls, then of {args.batch}-item calls")
    header = (
        f"{'dashboards':>10} {'calls/s':>11} {'p50 us':>7} {'p99 us':>7} {'mean us':>8} "
        f"{'batch items/s':>14} {'batch call us':>13} {'msgs/s/dash':>11} {'items/dash':>10} "
        f"{'dropped/dash':>12}"
    )
    print(header)
    for consumers in (int(n) for n in args.consumers.split(",")):
        r = measure(consumers, args.seconds, args.batch)
        print(
            f"{r['consumers']:>10} {r['single_calls_per_s']:>11,.0f} {r['single_p50_us']:>7.2f} "
            f"{r['single_p99_us']:>7.2f} {r['single_mean_us']:>8.2f} "
            f"{r['batch_items_per_s']:>14,.0f} {r['batch_call_us']:>13.2f} "
            f"{r['messages_per_s_per_consumer']:>11.1f} "
            f"{r['items_delivered_per_consumer']:>10,.0f} {r['dropped_per_consumer']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
