"""Real processes for the integration tests: uvicorn web workers, Celery workers, redis-server.

Every process runs in its own process group with its output in a log file under the test's
temporary directory; :func:`log_tails` gives the end of each log for failure reports (the
conftest attaches them to a failing test's report). Processes are killed by process group,
never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYTHON = sys.executable
SECRET_KEY = "moe-integration-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OPERATOR = "operator"
OPERATOR_PASSWORD = "moe-it-operator-pass-1234"
# Variables of the pytest process that must not leak into the servers: each stack sets its own.
_LEAKY_PREFIXES = ("DATABASE_URL", "REDIS_URL", "CELERY_", "MOE_", "DJANGO_")

# Every process started by these helpers, for failure reports (name -> Proc).
STARTED: dict[str, Proc] = {}
_started_lock = threading.Lock()


def with_path(url: str, path: str) -> str:
    """``url`` with its path (database name, Redis db number) replaced."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a server process: the caller's minus every app setting, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="moe_project.settings",
        # One key for every process of a stack, so a token from one worker is valid on another.
        DJANGO_SECRET_KEY=SECRET_KEY,
        MOE_DEMO_PASSWORD=OPERATOR_PASSWORD,
        MOE_REGISTRY_POLL_SECONDS="0.2",
        MOE_LOG_LEVEL="INFO",
        # Two cores shared by several servers: one torch thread each.
        OMP_NUM_THREADS="1",
        # These tests count in flight across several HTTP calls to services with nothing
        # measured: leases must outlive those calls.
        MOE_LEASE_DEFAULT_SECONDS="30",
        MOE_LEASE_MIN_SECONDS="30",
        MOE_LEASE_MAX_SECONDS="30",
        # Shares right after a service recovers are not what these tests are about.
        MOE_SLOW_START_SECONDS="0",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], code: str, log_dir: Path, name: str, timeout: float = 240) -> str:
    """Run Django code (``call_command`` ...) in a fresh process with ``env``; fail loudly."""
    script = (
        "import django\ndjango.setup()\nfrom django.core.management import call_command\n" + code
    )
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        done = subprocess.run(
            [PYTHON, "-c", script],
            cwd=log_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        raise AssertionError(f"{name} exited with {done.returncode}:\n{text[-4000:]}")
    return text


class Proc:
    """A subprocess in its own process group, output in ``<log_dir>/<name>.log``."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_dir: Path, cwd: Path
    ) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        with _started_lock:
            STARTED[name] = self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group now (a crash, as far as the process can tell)."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 3.0) -> None:
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Children (uvicorn/celery pool processes) may outlive the leader: kill the group.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._log.close()

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before logging {needle!r}:\n"
                    f"{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} did not log {needle!r} in {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.2)


class WebServer(Proc):
    """``uvicorn moe_project.asgi:application`` on 127.0.0.1, as ``.ci/serve`` runs it."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            str(BIN / "uvicorn"),
            "moe_project.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--no-access-log",
            "--lifespan",
            "off",
            "--no-proxy-headers",
        ]
        super().__init__(name, args, env, log_dir, cwd=log_dir)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/api/v1/health`` answers at all (200 or 503)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) while starting:\n{self.tail()}"
                )
            try:
                response = httpx.get(f"{self.url}/api/v1/health", timeout=5.0)
                if response.status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)


class CeleryWorker(Proc):
    def __init__(
        self, name: str, env: dict[str, str], log_dir: Path, extra_args: Iterable[str] = ()
    ) -> None:
        args = [str(BIN / "celery"), "-A", "moe_project", "worker", *extra_args]
        super().__init__(name, args, env, log_dir, cwd=log_dir)

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_for_log(" ready.", timeout)


class RedisServer(Proc):
    """A private ``redis-server`` (no persistence) that a test may stop and start again."""

    def __init__(self, name: str, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        super().__init__(name, args, os.environ.copy(), log_dir, cwd=log_dir)

    def wait_ready(self, timeout: float = 15.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                if not self.alive() or time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready:\n{self.tail()}") from None
                time.sleep(0.1)


def start_all(servers: Iterable[Any], timeout: float = 120.0) -> None:
    """Wait for servers that were started together (they boot in parallel)."""
    for server in servers:
        server.wait_ready(timeout)


def log_tails(lines: int = 40) -> str:
    with _started_lock:
        procs = list(STARTED.values())
    return "\n\n".join(
        f"--- {p.name} (pid {p.pid}, {'running' if p.alive() else f'exit {p.popen.returncode}'})"
        f" {p.log_path}\n{p.tail(lines)}"
        for p in procs
    )


def forget(procs: Iterable[Proc]) -> None:
    with _started_lock:
        for proc in procs:
            STARTED.pop(proc.name, None)


# --- the HTTP API -----------------------------------------------------------------------------


class Api:
    """A JSON client for one web worker, carrying the operator's bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 15.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self.client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(path, json=body)

    def ok(self, response: httpx.Response, *expected: int) -> dict:
        expected = expected or (200,)
        assert response.status_code in expected, (
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text[:500]}"
        )
        return response.json()

    def route(self, data: dict, strategy: str | None = None, **extra: Any) -> httpx.Response:
        body: dict[str, Any] = {"data": data, **extra}
        if strategy:
            body["routing_strategy"] = strategy
        return self.post("/api/v1/route", body)

    def outcome(
        self,
        request_id: str,
        service_id: str,
        success: bool,
        latency_ms: float | None = None,
        status_code: int | None = None,
    ) -> dict:
        body = {"service_id": service_id, "success": success, "latency_ms": latency_ms}
        if status_code is not None:
            body["status_code"] = status_code
        return self.ok(self.post(f"/api/v1/route/{request_id}/outcome", body))

    def register(
        self, service_id: str, capabilities: list[str], *, max_capacity: int = 1000, **extra: Any
    ) -> dict:
        body = {
            "service_id": service_id,
            "service_type": "custom",
            "endpoint": extra.pop("endpoint", "http://127.0.0.1:9"),
            "capabilities": capabilities,
            "max_capacity": max_capacity,
            **extra,
        }
        return self.ok(self.post("/api/v1/services/register", body), 200, 201)

    def service(self, service_id: str) -> dict:
        return self.ok(self.get(f"/api/v1/services/{service_id}"))

    def services_with(self, capability: str) -> list[dict]:
        return self.ok(self.get("/api/v1/services", params={"capability": capability}))["results"]

    def metrics(self) -> dict:
        return self.ok(self.get("/api/v1/metrics"))

    def health(self) -> dict:
        response = self.get("/api/v1/health")
        assert response.status_code in (200, 503), response.text[:500]
        return response.json()


def obtain_token(base_url: str, username: str = OPERATOR, password: str = OPERATOR_PASSWORD) -> str:
    response = httpx.post(
        f"{base_url}/api/v1/auth/token/",
        json={"username": username, "password": password},
        timeout=30.0,
    )
    assert response.status_code == 200, f"token: {response.status_code} {response.text[:300]}"
    return response.json()["access"]


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> tuple[Any, float]:
    """Poll ``check`` until it returns something truthy; returns it and the seconds taken."""
    started = time.monotonic()
    last: Any = None
    while True:
        last = check()
        if last:
            return last, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def wait_known(apis: Iterable[Api], service_ids: Iterable[str], timeout: float = 10.0) -> None:
    """Until every worker's fleet snapshot (seen through /api/v1/metrics) has the services."""
    wanted = set(service_ids)
    for api in apis:
        wait_until(
            lambda api=api: wanted <= set(api.metrics()["per_service"]),
            timeout,
            f"{api.base_url} to load {sorted(wanted)}",
            interval=0.1,
        )
