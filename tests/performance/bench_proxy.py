"""Proxy benchmark: ``/api/v1/proxy/<path>`` against a direct call to the same backend, one run.

    .venv/bin/python -m tests.performance.bench_proxy                 # the full run (~1 min)
    .venv/bin/python -m tests.performance.bench_proxy --quick         # smoke (~20 s)
    .venv/bin/python -m tests.performance.bench_proxy --mb 100 --json

Two processes on 127.0.0.1 in a throw-away var dir (SQLite, local state): the router
(``uvicorn moe_project.asgi:application``, one worker, as ``make run`` serves it) and a
loopback backend (``uvicorn`` serving :func:`backend_app`, a bare ASGI app: echo, upload sink,
download source), registered as the only service of a capability. Measured, one phase after
the other:

* **latency**: ``--requests`` sequential ``GET`` on one keep-alive connection, direct and
  proxied alternately; p50/p99 of each and the p50 the proxy adds;
* **throughput**: ``--concurrency`` async clients for ``--seconds`` each, direct then proxied;
  requests/s and the proxied/direct ratio (plus the router's CPU time per proxied request);
* **memory**: the router process's RSS (``/proc/<pid>/status``, sampled every 20 ms) while a
  ``--mb`` MB upload (sent from a generator) and a ``--mb`` MB download (read in chunks) go
  through the proxy: the baseline before, the peak during, growth = peak - baseline.

Prints one JSON object (``--json``) or a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

CHUNK = 1 << 20


# --- the backend: a bare ASGI app, fast enough not to be the bottleneck -------------------


async def backend_app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    received = 0
    more = True
    while more:
        message = await receive()
        received += len(message.get("body", b""))
        more = message.get("more_body", False)
    if path.startswith("/download/"):
        size = int(path.rsplit("/", 1)[-1])
        headers = [(b"content-type", b"application/octet-stream")]
        headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = b"\0" * CHUNK
        sent = 0
        while sent < size:
            part = block[: min(CHUNK, size - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < size})
        return
    body = json.dumps({"ok": True, "received": received}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- measuring ----------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """Samples a process's RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_phase(direct_url: str, proxy_url: str, headers: dict, n: int) -> dict:
    direct, proxied = [], []
    with httpx.Client(timeout=10) as d, httpx.Client(timeout=10, headers=headers) as p:
        for _ in range(50):  # warm-up, both paths
            d.get(direct_url).raise_for_status()
            p.get(proxy_url).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            d.get(direct_url).raise_for_status()
            direct.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            p.get(proxy_url).raise_for_status()
            proxied.append((time.perf_counter() - started) * 1000)
    return {
        "requests_each": n,
        "direct_p50_ms": round(statistics.median(direct), 3),
        "direct_p99_ms": round(_pct(direct, 0.99), 3),
        "proxied_p50_ms": round(statistics.median(proxied), 3),
        "proxied_p99_ms": round(_pct(proxied, 0.99), 3),
        "added_p50_ms": round(statistics.median(proxied) - statistics.median(direct), 3),
    }


async def _load(url: str, headers: dict, concurrency: int, seconds: float) -> tuple[int, int]:
    done, errors = 0, 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, headers=headers, limits=limits) as client:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < stop:
                try:
                    response = await client.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                done += ok
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


def throughput_phase(
    direct_url: str, proxy_url: str, headers: dict, concurrency: int, seconds: float, pid: int
) -> dict:
    direct, direct_errors = asyncio.run(_load(direct_url, {}, concurrency, seconds))
    cpu_before = cpu_seconds(pid)
    proxied, proxied_errors = asyncio.run(_load(proxy_url, headers, concurrency, seconds))
    cpu = cpu_seconds(pid) - cpu_before
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "direct_rps": round(direct / seconds, 1),
        "proxied_rps": round(proxied / seconds, 1),
        "ratio": round(proxied / max(direct, 1), 3),
        "router_cpu_ms_per_request": round(cpu * 1000 / max(proxied, 1), 3),
        "errors": direct_errors + proxied_errors,
    }


def memory_phase(proxy_base: str, headers: dict, mb: int, pid: int) -> dict:
    size = mb * CHUNK

    def upload_body():
        block = b"u" * CHUNK
        for _ in range(mb):
            yield block

    out = {"mb": mb}
    with httpx.Client(timeout=120, headers=headers) as client:
        baseline = rss_mb(pid)
        with PeakRss(pid) as peak:
            started = time.perf_counter()
            response = client.post(
                f"{proxy_base}/upload",
                content=upload_body(),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
            took = time.perf_counter() - started
        assert response.status_code == 200, response.text[:300]
        assert response.json()["received"] == size, response.text[:300]
        out["upload"] = {
            "rss_before_mb": round(baseline, 1),
            "rss_peak_mb": round(peak.peak, 1),
            "growth_mb": round(peak.peak - baseline, 1),
            "seconds": round(took, 2),
        }
        baseline = rss_mb(pid)
        received = 0
        with PeakRss(pid) as peak:
            started = time.perf_counter()
            with client.stream("GET", f"{proxy_base}/download/{size}") as response:
                assert response.status_code == 200
                for chunk in response.iter_raw(CHUNK):
                    received += len(chunk)
            took = time.perf_counter() - started
        assert received == size, received
        out["download"] = {
            "rss_before_mb": round(baseline, 1),
            "rss_peak_mb": round(peak.peak, 1),
            "growth_mb": round(peak.peak - baseline, 1),
            "seconds": round(took, 2),
        }
    return out


# --- the run ------------------------------------------------------------------------------

SETUP = """
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from registry.services import register_service
get_user_model().objects.create_user("bench", password="bench-pass-12345")
register_service({{"service_id": "bench-backend", "service_type": "custom",
                   "endpoint": "{endpoint}", "capabilities": ["bench"], "max_capacity": 10000}})
"""


def run(opts: argparse.Namespace) -> dict:
    from tests.integration.stack import (
        BIN,
        Proc,
        WebServer,
        base_env,
        free_port,
        manage,
        obtain_token,
    )

    root = Path(tempfile.mkdtemp(prefix="moe-bench-proxy-"))
    env = base_env(
        MOE_VAR_DIR=str(root / "var"),
        MOE_LOG_LEVEL="WARNING",
        MOE_LEASE_DEFAULT_SECONDS="1",
        MOE_LEASE_MIN_SECONDS="0.01",
        MOE_LEASE_MAX_SECONDS="1",
    )
    port = free_port()
    backend = Proc(
        "bench-backend",
        [
            str(BIN / "uvicorn"),
            "tests.performance.bench_proxy:backend_app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        root,
        cwd=root,
    )
    direct_base = f"http://127.0.0.1:{port}"
    manage(env, SETUP.format(endpoint=direct_base), root, "setup-bench-proxy")
    web = WebServer("bench-proxy-web", env, root)
    try:
        web.wait_ready()
        token = obtain_token(web.url, "bench", "bench-pass-12345")
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Moe-Capabilities": "bench",
            "X-Moe-Strategy": "semantic",
        }
        proxy_base = f"{web.url}/api/v1/proxy"
        result = {
            "command": "python -m tests.performance.bench_proxy " + " ".join(sys.argv[1:]),
            "latency": latency_phase(
                f"{direct_base}/echo", f"{proxy_base}/echo", headers, opts.requests
            ),
            "throughput": throughput_phase(
                f"{direct_base}/echo",
                f"{proxy_base}/echo",
                headers,
                opts.concurrency,
                opts.seconds,
                web.pid,
            ),
            "memory": memory_phase(proxy_base, headers, opts.mb, web.pid),
        }
    finally:
        web.stop()
        backend.stop()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke test")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.requests, opts.seconds, opts.mb, opts.concurrency = 100, 1.0, 8, 8
    result = run(opts)
    if opts.json:
        print(json.dumps(result))
    else:
        lat, thr, mem = result["latency"], result["throughput"], result["memory"]
        print(
            f"latency p50: direct {lat['direct_p50_ms']} ms, proxied {lat['proxied_p50_ms']} ms"
            f" (+{lat['added_p50_ms']} ms); p99 {lat['direct_p99_ms']} / {lat['proxied_p99_ms']}"
        )
        print(
            f"throughput x{thr['concurrency']}: direct {thr['direct_rps']} req/s, proxied"
            f" {thr['proxied_rps']} req/s (ratio {thr['ratio']}), router CPU"
            f" {thr['router_cpu_ms_per_request']} ms/request, errors {thr['errors']}"
        )
        for phase in ("upload", "download"):
            m = mem[phase]
            print(
                f"{mem['mb']} MB {phase}: RSS {m['rss_before_mb']} -> peak {m['rss_peak_mb']} MB"
                f" (+{m['growth_mb']} MB) in {m['seconds']} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
