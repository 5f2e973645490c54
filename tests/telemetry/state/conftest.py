"""Fixtures for the live-state backends: a real Redis, a private Redis to kill, a fake clock.

The shared Redis (``TEST_REDIS_URL``, default 127.0.0.1:6379) is used with a fresh key prefix
per test, deleted afterwards. Tests that stop Redis start their own ``redis-server`` on a free
port and kill only that one. Under ``CI=true`` a missing Redis (or ``redis-server`` binary)
fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest
import redis

from routing.core.state import LeaseConfig, LocalStateStore
from routing.core.types import FleetSnapshot, ServiceSpec
from telemetry.state.redis_store import RedisStateStore, make_client
from tests.support.clock import FakeClock  # noqa: F401  (re-exported to these tests)
from tests.support.net import free_port
from tests.support.requirements import missing

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# A lease that outlives any test: for tests that count in flight on the real clock and are about
# something else than lease expiry (the default lease of an unmeasured service is 0.05 s).
HELD = LeaseConfig.fixed(3600.0)


def fleet(n: int) -> FleetSnapshot:
    """A snapshot of services ``svc-00`` .. ``svc-<n-1>`` (snapshot order = id order)."""
    return FleetSnapshot.build(
        [
            ServiceSpec(
                f"svc-{i:02d}", "inference", f"http://127.0.0.1:{9000 + i}", frozenset(), 100
            )
            for i in range(n)
        ]
    )


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        make_client(TEST_REDIS_URL).ping()
    except redis.RedisError as exc:
        missing(f"no Redis at {TEST_REDIS_URL}: {exc}")
    return TEST_REDIS_URL


@pytest.fixture
def key_prefix(redis_url):
    prefix = f"test:state:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def make_store(redis_url, key_prefix):
    """Build Redis stores ("workers"), each on its own client, all on this test's prefix."""
    clients = []

    def build(**options) -> RedisStateStore:
        client = make_client(options.pop("url", redis_url))
        clients.append(client)
        options.setdefault("key_prefix", key_prefix)
        return RedisStateStore(client, **options)

    yield build
    for client in clients:
        client.close()


@pytest.fixture(params=["local", "redis"])
def backend(request):
    """Build a store of either backend with the same options: for conformance tests."""
    make_store = request.getfixturevalue("make_store") if request.param == "redis" else None

    def build(**options):
        if make_store is None:
            return LocalStateStore(**options)
        return make_store(view_max_age_s=0.0, **options)

    build.name = request.param
    return build


class PrivateRedis:
    """A redis-server subprocess of our own on 127.0.0.1, safe to kill and restart."""

    def __init__(self, binary: str, workdir: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    server = PrivateRedis(binary, str(tmp_path))
    server.start()
    yield server
    server.kill()
