"""N dashboard-like WebSocket clients for benchmarks: connect to /ws/routing with a JWT and
read every message until stopped; print one JSON line with what they saw.

    python -m tests.performance.bench_dashboards --port 8005 --token <access> -n 10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from websockets.asyncio.client import connect


async def _client(url: str, token: str, counts: dict, stop: asyncio.Event) -> None:
    async with connect(url, subprotocols=["moe.routing.v1", f"bearer.{token}"]) as ws:
        counts["connected"] += 1
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            message = json.loads(raw)
            counts["messages"] += 1
            counts["route_events"] += len(message.get("events", ()))


async def _main(port: int, token: str, n: int, seconds: float) -> dict:
    url = f"ws://127.0.0.1:{port}/ws/routing"
    counts = {"connected": 0, "messages": 0, "route_events": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(seconds, stop.set)
    await asyncio.gather(*(_client(url, token, counts, stop) for _ in range(n)))
    return {"dashboards": n, **counts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args.port, args.token, args.n, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
