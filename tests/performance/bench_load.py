"""The machinery behind ``python -m tests.performance.bench_http``: workloads, load generators,
the server.

Nothing here imports Django at module level, so the Python load generator can run as its own
process (``python -m tests.performance.bench_load loadgen SPEC.json``) without paying for Django
on a 2-core machine where every cycle the load generator spends is taken from the server.

* **Workloads**: a mix of route bodies (types, capabilities, affinity keys, anomaly scores of
  the demo fleet) and one batch body of N such items; fixed seed, so runs are comparable.
* **Load generators**, both closed-loop over keep-alive connections to 127.0.0.1, both
  returning the same :class:`PhaseResult`: ``wrk`` (a generated Lua script pre-formats the
  requests and counts statuses and ``no_eligible_service`` items) and a small asyncio one.
* **ServerProcess**: the README's uvicorn command (or daphne; several daphne processes share
  one listening socket, as daphne has no ``--workers``), readiness, per-phase server CPU time
  read from ``/proc``, and a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support.net import HOST, free_port
from tests.support.procs import tool, tree_cpu_ticks
from tests.support.stats import percentile

ROOT = Path(__file__).resolve().parents[2]

NO_ELIGIBLE_MARK = b'"code":"no_eligible_service"'

# --- workloads ---------------------------------------------------------------------------------

# Request shapes that exercise the demo fleet's strategies: typed requests with capabilities,
# affinity keys (adaptive picks consistent hashing for them), anomalous ones (tda_aware).
# Every (type, capabilities) pair is served by at least one demo service, so an answer
# other than a decision is a fault, not the workload.
_SHAPES = (
    ("inference", ()),
    ("storage", ("storage",)),
    ("analysis", ("analysis",)),
    ("consensus", ()),
    ("custom", ("processing", "analysis")),
    ("learning", ()),
    ("inference", ("code", "text-generation")),
    ("", ("embedding",)),
)
_WORDS = ("summarise", "classify", "lookup", "aggregate", "vote", "train", "score", "rank")


def route_item(i: int, rng: random.Random) -> dict:
    """One ``data`` object of the route API, varied by ``i``."""
    request_type, capabilities = _SHAPES[i % len(_SHAPES)]
    item: dict = {
        "type": request_type,
        "priority": round(rng.random(), 3),
        "complexity": round(rng.random(), 3),
        "capabilities": list(capabilities),
        "data": {"text": " ".join(rng.sample(_WORDS, 3)), "values": [0.1, 0.2, 0.3]},
    }
    if i % 3 == 0:
        item["key"] = f"user-{rng.randrange(10_000)}"
    if i % 5 == 0:
        item["anomaly_score"] = round(rng.random(), 3)
    return item


def route_bodies(count: int = 64, strategy: str | None = None, seed: int = 7) -> list[bytes]:
    """``count`` distinct ``POST /api/v1/route`` bodies (the load generators cycle through them)."""
    rng = random.Random(seed)
    bodies = []
    for i in range(count):
        body: dict = {"data": route_item(i, rng)}
        if strategy:
            body["routing_strategy"] = strategy
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def batch_body(items: int = 1000, strategy: str | None = None, seed: int = 11) -> bytes:
    """One ``POST /api/v1/route/batch`` body with ``items`` requests."""
    rng = random.Random(seed)
    body: dict = {"requests": [route_item(i, rng) for i in range(items)]}
    if strategy:
        body["routing_strategy"] = strategy
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Workload:
    """What one phase sends: method, path, headers and the bodies to cycle through."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    count_no_eligible: bool = False


# --- results ---------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """One load phase as both load generators report it (times in microseconds)."""

    requests: int  # responses received, any status
    ok: int  # 2xx responses
    other: int  # non-2xx responses
    no_eligible: int  # "no_eligible_service" items counted in the bodies (batch)
    duration_us: int
    errors: dict[str, int]  # socket-level: connect, read, write, timeout
    latency_us: dict[str, float]  # mean, max, p50, p90, p99

    @property
    def duration_s(self) -> float:
        return self.duration_us / 1e6

    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_us else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# --- wrk ---------------------------------------------------------------------------------------

_WRK_SCRIPT = r"""-- generated by tests/performance/bench_load.py
local bodies = {
%(bodies)s
}
local path = %(path)s
local count_no_eligible = %(count_no_eligible)s
wrk.method = %(method)s
%(headers)s
local reqs = {}
local idx = 0

init = function(args)
  for i, b in ipairs(bodies) do reqs[i] = wrk.format(nil, path, nil, b) end
  if #reqs == 0 then reqs[1] = wrk.format(nil, path) end
  idx = math.random(#reqs) - 1
end

request = function()
  idx = idx %% #reqs + 1
  return reqs[idx]
end

ok = 0
other = 0
no_eligible = 0
response = function(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
  if count_no_eligible and body then
    for _ in string.gmatch(body, '"code":"no_eligible_service"') do
      no_eligible = no_eligible + 1
    end
  end
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

done = function(summary, latency, requests)
  local t_ok, t_other, t_ne = 0, 0, 0
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_other = t_other + t:get("other")
    t_ne = t_ne + t:get("no_eligible")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"ok":%%d,"other":%%d,"no_eligible":%%d,"duration_us":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d},' ..
    '"latency_us":{"mean":%%.1f,"max":%%d,"p50":%%d,"p90":%%d,"p99":%%d}}\n',
    summary.requests, t_ok, t_other, t_ne, summary.duration,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _lua_string(value: str | bytes) -> str:
    """A Lua long-bracket literal that cannot be closed by the content."""
    text = value.decode() if isinstance(value, bytes) else value
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_script(workload: Workload) -> str:
    headers = "\n".join(
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in workload.headers.items()
    )
    return _WRK_SCRIPT % {
        "bodies": ",\n".join(_lua_string(b) for b in workload.bodies),
        "path": _lua_string(workload.path),
        "count_no_eligible": "true" if workload.count_no_eligible else "false",
        "method": _lua_string(workload.method),
        "headers": headers,
    }


def wrk_version(wrk: str = "wrk") -> str | None:
    path = shutil.which(wrk)
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def run_wrk(
    workload: Workload,
    port: int,
    duration_s: float,
    connections: int,
    workdir: Path,
    threads: int = 1,
    timeout_s: float = 30.0,
) -> PhaseResult:
    """Run wrk for ``duration_s`` seconds and parse the JSON line its ``done()`` prints."""
    script = workdir / f"wrk-{workload.name}.lua"
    script.write_text(wrk_script(workload))
    threads = max(1, min(threads, connections))
    cmd = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{workload.path}",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return PhaseResult(**json.loads(line[len("WRK_JSON ") :]))
    raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")


# --- the Python load generator ----------------------------------------------------------------


def _encode_requests(workload: Workload, port: int) -> list[bytes]:
    head = [f"{workload.method} {workload.path} HTTP/1.1", f"Host: {HOST}:{port}"]
    head += [f"{k}: {v}" for k, v in workload.headers.items()]
    bodies = workload.bodies or [b""]
    out = []
    for body in bodies:
        lines = head + ([f"Content-Length: {len(body)}"] if workload.method != "GET" else [])
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close" and lines[0].startswith(
        "HTTP/1.1"
    )
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
        keep_alive = False
    return status, body, keep_alive


async def _connection_loop(spec: dict, requests: list[bytes], stats: dict, deadline: float):
    count_ne = spec["count_no_eligible"]
    latencies: array = stats["latencies"]
    index = random.randrange(len(requests))
    reader = writer = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, spec["port"])
            index = (index + 1) % len(requests)
            started = time.perf_counter()
            writer.write(requests[index])
            remaining = max(0.001, deadline + spec["timeout_s"] - started)
            status, body, keep_alive = await asyncio.wait_for(_read_response(reader), remaining)
            latencies.append((time.perf_counter() - started) * 1e6)
            stats["requests"] += 1
            if 200 <= status < 300:
                stats["ok"] += 1
            else:
                stats["other"] += 1
            if count_ne:
                stats["no_eligible"] += body.count(NO_ELIGIBLE_MARK)
            if not keep_alive:
                writer.close()
                reader = writer = None
        except TimeoutError:
            stats["errors"]["timeout"] += 1
            writer = _drop(writer)
        except (ConnectionRefusedError, OSError) as exc:
            key = "connect" if writer is None else "read"
            stats["errors"][key] += 1
            writer = _drop(writer)
            if isinstance(exc, ConnectionRefusedError):
                await asyncio.sleep(0.05)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            stats["errors"]["read"] += 1
            writer = _drop(writer)
    _drop(writer)


def _drop(writer):
    if writer is not None:
        writer.close()
    return None


async def _run_loadgen(spec: dict) -> dict:
    workload = Workload(
        name=spec["name"],
        method=spec["method"],
        path=spec["path"],
        headers=spec["headers"],
        bodies=[b.encode() for b in spec["bodies"]],
        count_no_eligible=spec["count_no_eligible"],
    )
    requests = _encode_requests(workload, spec["port"])
    stats = {
        "requests": 0,
        "ok": 0,
        "other": 0,
        "no_eligible": 0,
        "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "latencies": array("d"),
    }
    started = time.perf_counter()
    deadline = started + spec["duration_s"]
    await asyncio.gather(
        *(_connection_loop(spec, requests, stats, deadline) for _ in range(spec["connections"]))
    )
    elapsed = time.perf_counter() - started
    lat = sorted(stats.pop("latencies"))
    stats["duration_us"] = int(elapsed * 1e6)
    stats["latency_us"] = {
        "mean": sum(lat) / len(lat) if lat else 0.0,
        "max": lat[-1] if lat else 0.0,
        "p50": percentile(lat, 50),
        "p90": percentile(lat, 90),
        "p99": percentile(lat, 99),
    }
    return stats


def run_python_loadgen(
    workload: Workload,
    port: int,
    duration_s: float,
    connections: int,
    workdir: Path,
    timeout_s: float = 30.0,
) -> PhaseResult:
    """Run the asyncio load generator in a separate process (it must not share the server's
    interpreter, nor this one's GIL)."""
    spec = {
        "name": workload.name,
        "method": workload.method,
        "path": workload.path,
        "headers": workload.headers,
        "bodies": [b.decode() for b in workload.bodies],
        "count_no_eligible": workload.count_no_eligible,
        "port": port,
        "duration_s": duration_s,
        "connections": connections,
        "timeout_s": timeout_s,
    }
    spec_path = workdir / f"loadgen-{workload.name}.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.performance.bench_load", "loadgen", str(spec_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=duration_s + timeout_s + 60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {proc.stderr.strip()}")
    return PhaseResult(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _loadgen_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_run_loadgen(spec))))


# --- the server under test ---------------------------------------------------------------------


class ServerProcess:
    """The ASGI server under test, started on a free port in its own process group."""

    def __init__(
        self,
        kind: str,
        workers: int,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        app: str = "moe_project.asgi:application",
        reuse_port: bool = False,
    ) -> None:
        if kind not in ("uvicorn", "daphne"):
            raise ValueError(f"unknown server {kind!r}")
        self.kind = kind
        self.reuse_port = reuse_port
        self.app = app
        self.workers = workers
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.port = 0
        self.procs: list[subprocess.Popen] = []
        self.command = ""
        self._listener: socket.socket | None = None
        self._listeners: list[socket.socket] = []
        self._log = None

    # -- lifecycle --

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        if self.kind == "uvicorn" and self.reuse_port and self.workers > 1:
            self._start_reuse_port()
            return
        if self.kind == "uvicorn":
            self.port = free_port()
            cmd = [
                tool("uvicorn"),
                self.app,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--no-access-log",
                "--lifespan",
                "off",
            ]
            self.command = " ".join(cmd[1:])
            self.procs.append(self._spawn(cmd))
            return
        base = [tool("daphne"), "-v", "0"]
        if self.workers == 1:
            self.port = free_port()
            cmd = base + ["-b", HOST, "-p", str(self.port), self.app]
            self.command = " ".join(cmd[1:])
            self.procs.append(self._spawn(cmd))
            return
        # Daphne has no --workers: N processes accept on one listening socket (--fd).
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(2048)
        self.port = self._listener.getsockname()[1]
        fd = self._listener.fileno()
        os.set_inheritable(fd, True)
        cmd = base + ["--fd", str(fd), self.app]
        self.command = f"{self.workers} x " + " ".join(cmd[1:]) + " (one shared listening socket)"
        for _ in range(self.workers):
            self.procs.append(self._spawn(cmd, pass_fds=(fd,)))

    def _start_reuse_port(self) -> None:
        """N single-worker uvicorn processes, each on its own SO_REUSEPORT socket of one port:
        the kernel spreads new connections over them by address hash. (uvicorn --workers
        shares one socket, and the first worker to wake accepts most of a burst of
        connections: with a load generator's few long-lived connections, one worker can get
        14 of 16.) A reverse proxy in front spreads requests in production (docs/DEPLOY.md)."""
        for _ in range(self.workers):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # uvicorn takes an --fd socket for a Unix one and leaves Nagle on: accepted
            # sockets inherit this instead (without it every answer waits ~40 ms for an ACK).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((HOST, self.port))
            sock.listen(2048)
            self.port = sock.getsockname()[1]
            self._listeners.append(sock)
        for sock in self._listeners:
            fd = sock.fileno()
            os.set_inheritable(fd, True)
            cmd = [tool("uvicorn"), self.app, "--fd", str(fd), "--no-access-log"]
            self.procs.append(self._spawn(cmd + ["--lifespan", "off"], pass_fds=(fd,)))
        self.command = (
            f"{self.workers} x uvicorn {self.app} --fd N --no-access-log --lifespan off "
            "(one SO_REUSEPORT socket each, same port)"
        )

    def _spawn(self, cmd: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        return subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() reaches every worker
            pass_fds=pass_fds,
        )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (uvicorn's supervisor stops its workers), then SIGKILL the group if needed."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            # Our own process group (start_new_session): leftover workers, if any.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in self._listeners:
            sock.close()
        self._listeners = []
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- measurement --

    def cpu_ticks(self) -> dict[int, int]:
        """pid -> CPU time (user + system, clock ticks) so far, for the server's processes."""
        return tree_cpu_ticks([p.pid for p in self.procs])


# --- profiling (py-spy) ---------------------------------------------------------------------


def start_profiler(root_pid: int, duration_s: float, output: Path) -> subprocess.Popen | None:
    """py-spy on the server and its workers, GIL holder only (where the Python CPU time
    goes), raw collapsed stacks; None when py-spy is not installed."""
    pyspy = tool("py-spy")
    if not Path(pyspy).exists() and shutil.which(pyspy) is None:
        return None
    cmd = [pyspy, "record", "-p", str(root_pid), "--subprocesses", "--gil", "--function"]
    cmd += ["--nonblocking", "-r", "250", "-d", str(max(1, round(duration_s)))]
    cmd += ["-f", "raw", "-o", str(output)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_group(frame: str) -> str:
    """'func (django/core/handlers/asgi.py:160)' -> 'django'; stdlib modules by module."""
    match = re.search(r"\(([^()]*?):\d+\)$", frame)
    path = match.group(1) if match else frame
    head = path.split("/", 1)[0]
    return head[:-3] if head.endswith(".py") else head


def summarise_profile(raw_path: Path, top: int = 25) -> str:
    """Self and inclusive time per function, and self time per package, from py-spy raw."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    groups: dict[str, int] = {}
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        leaf = frames[-1]
        self_time[leaf] = self_time.get(leaf, 0) + n
        groups[_frame_group(leaf)] = groups.get(_frame_group(leaf), 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return "no samples\n"

    def block(title: str, table: dict[str, int], rows: int) -> list[str]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:rows]
        return [title] + [f"{100 * v / total:6.1f}%  {k}" for k, v in ranked] + [""]

    lines = [f"{total} samples (GIL holder only)", ""]
    lines += block("self time by package/module:", groups, 20)
    lines += block("self time by function:", self_time, top)
    lines += block("inclusive time by function:", inclusive, top * 2)
    return "\n".join(lines)


# --- a throwaway environment ---------------------------------------------------------------

# Variables of the caller's environment that must not leak into the benchmark's server: it
# gets its own database, state and broker, never the ones a developer or a test run uses.
_SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "MOE_STATE_BACKEND",
    "MOE_HISTORY_DIR",
    "DJANGO_SETTINGS_MODULE",
)

_SETUP_SCRIPT = """
from django.core.management import call_command
from registry.models import Service
from registry.services import register_service

call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo_fleet", verbosity=0)
capacity = {capacity}
if capacity:
    for service_id in Service.objects.values_list("service_id", flat=True):
        register_service({{"service_id": service_id, "max_capacity": capacity}})
print("BENCH_SETUP_OK", Service.objects.count())
"""


def _redis_db(url: str) -> int:
    match = re.search(r"/(\d+)/?$", url.split("?")[0])
    return int(match.group(1)) if match else 0


def _database_name(url: str) -> str:
    return url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def check_scratch_targets(redis_url: str, database_url: str) -> None:
    """Refuse a Redis db or a database that someone else's work (the test suite) uses."""
    if _redis_db(redis_url) == 0:
        raise ValueError(
            f"{redis_url}: pick a scratch Redis database number (not 0, the test suite's); "
            "the benchmark flushes it."
        )
    name = _database_name(database_url)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or "bench" not in name:
        raise ValueError(
            f"{database_url}: the scratch database name must contain 'bench' "
            "(it is dropped and recreated)."
        )


class BenchEnvironment:
    """A var dir (SQLite, history spool, secret key) and, for the scale-out setup, a scratch
    PostgreSQL database and Redis db; migrated and seeded with the demo fleet."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        base_dir: Path,
        redis_url: str | None = None,
        database_url: str | None = None,
        capacity: int = 0,
        rate_limit: str = "1000000000/s",
    ) -> None:
        self.name = name
        self.base_dir = base_dir
        self.var_dir = workdir / name
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.database_url = database_url
        self.capacity = capacity
        if (redis_url is None) != (database_url is None):
            raise ValueError("the scale-out setup needs both a Redis URL and a database URL")
        if redis_url:
            check_scratch_targets(redis_url, database_url)
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "moe_project.settings",
                "DJANGO_DEBUG": "false",
                "MOE_VAR_DIR": str(self.var_dir),
                "MOE_RATE_LIMIT": rate_limit,
                # The benchmark routes and never reports outcomes, so in-flight counts are
                # released by lease expiry (0.1 s for a service never measured): cap at 1 s.
                "MOE_LEASE_MAX_SECONDS": "1",
                "MOE_PENDING_TTL_SECONDS": "60",
                "MOE_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
            env["DATABASE_URL"] = database_url
        self.env = env

    @property
    def state(self) -> str:
        return "redis" if self.redis_url else "local"

    @property
    def database(self) -> str:
        return "postgresql" if self.database_url else "sqlite"

    def prepare(self) -> None:
        if self.redis_url:
            self.flush_redis()
            self._recreate_database()
        script = _SETUP_SCRIPT.format(capacity=int(self.capacity))
        proc = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=self.base_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0 or "BENCH_SETUP_OK" not in proc.stdout:
            raise RuntimeError(f"setup failed: {proc.stderr.strip()[-2000:]}")

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def flush_redis(self) -> None:
        if self.redis_url:
            self.redis_client().flushdb()

    def _admin_dsn(self) -> tuple[str, str]:
        name = _database_name(self.database_url)
        return self.database_url.split("?")[0].rstrip("/").rsplit("/", 1)[0] + "/postgres", name

    def _recreate_database(self) -> None:
        self._drop_database()
        import psycopg

        dsn, name = self._admin_dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def _drop_database(self) -> None:
        import psycopg

        dsn, name = self._admin_dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        if self.redis_url:
            try:
                self.flush_redis()
            finally:
                self._drop_database()


def new_workdir(prefix: str = "moe-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "loadgen":
        _loadgen_main(sys.argv[2])
    else:
        sys.exit("usage: python -m tests.performance.bench_load loadgen SPEC.json")
