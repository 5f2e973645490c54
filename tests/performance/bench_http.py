"""HTTP benchmark: the ASGI server the README uses, a trivial view, route and batch, one run.

    python -m tests.performance.bench_http                        # uvicorn, 1 worker, local state
    python -m tests.performance.bench_http --server both          # uvicorn and daphne
    python -m tests.performance.bench_http --redis --workers 2    # scale-out: Redis, PostgreSQL
    python -m tests.performance.bench_http --scale-out            # local x1, redis x1, redis x2
    python -m tests.performance.bench_http --duration 10 --rounds 2 --json

Everything happens in a throwaway environment (a temp var dir with its own SQLite database and
history spool; with ``--redis`` a scratch PostgreSQL database and Redis db, flushed and dropped
afterwards): migrate, seed the demo fleet, start the server on a free port, wait until every
worker answers, warm up, then measure in the same run, one phase after the other:

* ``GET /api/v1/ping`` - the trivial JSON view (same server, same middleware): the baseline;
* ``POST /api/v1/route`` - requests/s, p50/p99;
* ``POST /api/v1/route/batch`` with ``--batch-size`` items per call - calls/s, decisions/s.

Load comes from wrk (a separate process) when installed, else from the Python load generator in
``tests.performance.bench_load`` (also a separate process). Beside throughput, each phase
reports the server's CPU time per request read from /proc: on a busy machine throughput moves
with the neighbours, CPU per request much less, so the CPU ratio is the steadier figure to
compare. ``machine_cores`` says where the machine's cores went during the phase (the server,
redis-server, the load generator, interrupts, everything else) and ``redis_cpu_us_per_item``
what redis-server spent per request (per decision for batches): what limits a figure on a
machine shared with other work.

The benchmark routes and never reports outcomes, so the demo fleet's capacities (8 to 200
in-flight requests) would fill up within a second and measure ``no_eligible_service`` answers;
the setup raises every service's ``max_capacity`` (``--capacity``, 0 keeps the demo values)
and in-flight entries expire after 1 s. Non-2xx answers and ``no_eligible_service`` items are
counted and reported; a run with any is flagged invalid.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from routing.request_ids import worker_prefix
from tests.performance.bench_load import (
    ROOT,
    BenchEnvironment,
    PhaseResult,
    ServerProcess,
    Workload,
    batch_body,
    new_workdir,
    route_bodies,
    run_python_loadgen,
    run_wrk,
    start_profiler,
    summarise_profile,
    wrk_version,
)
from tests.support.net import HOST
from tests.support.procs import CLOCK_TICKS, proc_stats

TARGET_ROUTE_RATIO = 0.70
TARGET_BATCH_DECISIONS = 50_000
READY_TIMEOUT_S = 120.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/moe_bench"
# Raised capacity per service: the benchmark never reports outcomes (see the module docstring).
DEFAULT_CAPACITY = 1_000_000


class BenchError(Exception):
    """A run that cannot go on (bad options, a server that died); the message says why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.performance.bench_http",
        description="Benchmark the HTTP API on the README's ASGI server: trivial view vs "
        "POST /api/v1/route vs POST /api/v1/route/batch, in one run; prints requests/s, p50/p99, "
        "decisions/s and the route/trivial ratio.",
    )
    parser.add_argument("--workers", type=int, default=1, help="ASGI worker processes.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measured phase.")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="Seconds of warm-up per endpoint."
    )
    parser.add_argument("--server", choices=["uvicorn", "daphne", "both"], default="uvicorn")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="Scale-out setup: Redis live state + PostgreSQL (scratch db, dropped after).",
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="Compare in one run: local state x1 worker, Redis x1, Redis x2 "
        "(overrides --workers/--redis).",
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="Keep-alive connections (ping, route)."
    )
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=None,
        help="Connections for the batch phase (default: 2 per worker).",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="Items per batch call.")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Measure the three phases this many times (order reversed every other round).",
    )
    parser.add_argument(
        "--strategy", default=None, help="routing_strategy to send (default: the server's)."
    )
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed (auto), else the asyncio one in tests.performance.bench_load.",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Scratch Redis db for --redis (flushed; db 0 is refused).",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="Scratch PostgreSQL database for --redis (dropped and recreated; its name "
        "must contain 'bench').",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=DEFAULT_CAPACITY,
        help="max_capacity given to every demo service (0 keeps the demo values).",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="Record py-spy (GIL holder) for every measured phase into DIR, with a text "
        "summary per phase. Sampling costs the server a little CPU.",
    )
    parser.add_argument(
        "--app",
        default="moe_project.asgi:application",
        help="ASGI application to serve (to try a tuned entry point against the default).",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra environment for the server process (repeatable), e.g. "
        "DJANGO_SETTINGS_MODULE or PYTHONPATH for an experiment.",
    )
    parser.add_argument(
        "--dashboards",
        type=int,
        default=0,
        help="Also measure routes with N live-feed WebSocket clients connected.",
    )
    parser.add_argument(
        "--lean-baseline",
        action="store_true",
        help="Also measure GET /bench/lean-ping (tests/performance/lean_baseline.py): a trivial "
        "JSON answer through the lean route handler's plumbing, the strict baseline for route.",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="With uvicorn and several workers: one uvicorn process per worker, each on its own "
        "SO_REUSEPORT socket (the kernel spreads connections; --workers shares one socket and "
        "can hand one worker most of the load generator's connections).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temp dir (logs).")
    parser.add_argument("--json", action="store_true", help="Print only the JSON result.")
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = vars(build_parser().parse_args(argv))
    try:
        result = HttpBench(opts).run()
    except BenchError as exc:
        print(f"bench_http: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if opts["json"] else _table(result))
    return 0


class HttpBench:
    """One benchmark run over the setups and servers the options name."""

    def __init__(self, opts: dict) -> None:
        self.opts = opts

    # -- entry point ---------------------------------------------------------------------------

    def run(self) -> dict:
        opts = self.opts
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if opts["scale_out"]:
            setups = [("local", 1), ("redis", 1), ("redis", 2)]
        else:
            if opts["workers"] < 1:
                raise BenchError("--workers must be at least 1.")
            if opts["workers"] > 1 and not opts["redis"]:
                raise BenchError(
                    "Without --redis the live state is per process: only 1 worker is a valid "
                    "setup. Add --redis for several workers."
                )
            setups = [("redis" if opts["redis"] else "local", opts["workers"])]
        for name in ("duration", "warmup"):
            if opts[name] < (1 if name == "duration" else 0):
                raise BenchError(f"--{name} is too small.")
        servers = ["uvicorn", "daphne"] if opts["server"] == "both" else [opts["server"]]
        loadgen = self._pick_loadgen(opts["loadgen"])

        workdir = new_workdir()
        machine = _machine()
        started = time.time()
        environments: dict[str, BenchEnvironment] = {}
        runs = []
        try:
            for state, workers in setups:
                env = environments.get(state)
                if env is None:
                    env = self._environment(workdir, state, opts)
                    environments[state] = env
                for kind in servers:
                    env.flush_redis()
                    runs.append(self._run(env, kind, workers, loadgen, opts))
        except KeyboardInterrupt:
            raise BenchError("interrupted") from None
        finally:
            for env in environments.values():
                env.cleanup()
            if opts["keep"]:
                self._progress(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

        machine["loadavg_end"] = list(os.getloadavg())
        return {
            "benchmark": "bench_http",
            "command": "python -m tests.performance.bench_http " + " ".join(_argv(opts)),
            "machine": machine,
            "settings": {
                "duration_s": opts["duration"],
                "warmup_s": opts["warmup"],
                "rounds": opts["rounds"],
                "connections": opts["connections"],
                "batch_size": opts["batch_size"],
                "strategy": opts["strategy"] or "server default",
                "loadgen": loadgen,
                "capacity_per_service": opts["capacity"],
                "app": opts["app"],
                "server_env": opts["server_env"],
            },
            "runs": runs,
            "summary": _summary(runs),
            "elapsed_s": round(time.time() - started, 1),
        }

    # -- one setup -----------------------------------------------------------------------------

    def _pick_loadgen(self, choice: str) -> str:
        version = wrk_version()
        if choice == "wrk" and version is None:
            raise BenchError("wrk is not installed (apt-get install wrk), use --loadgen python.")
        if choice == "python" or version is None:
            return "python (tests.performance.bench_load, asyncio, separate process)"
        return version

    def _environment(self, workdir: Path, state: str, opts) -> BenchEnvironment:
        redis = state == "redis"
        try:
            env = BenchEnvironment(
                workdir,
                state,
                ROOT,
                redis_url=opts["redis_url"] if redis else None,
                database_url=opts["database_url"] if redis else None,
                capacity=opts["capacity"],
            )
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        self._progress(f"[{state}] migrate + seed in {env.var_dir}")
        try:
            env.prepare()
        except Exception as exc:
            env.cleanup()
            raise BenchError(f"[{state}] could not prepare the environment: {exc}") from None
        return env

    def _run(self, env: BenchEnvironment, kind: str, workers: int, loadgen: str, opts) -> dict:
        label = f"{kind}/{env.state}/{workers}w"
        log = env.var_dir / f"server-{kind}-{workers}.log"
        server_env = dict(env.env)
        for item in opts["server_env"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise BenchError(f"--server-env wants KEY=VALUE, not {item!r}")
            server_env[key] = value
        app = opts["app"]
        if opts["lean_baseline"]:
            if app != "moe_project.asgi:application":
                raise BenchError("--lean-baseline serves its own --app")
            app = "tests.performance.lean_baseline:application"
        server = ServerProcess(
            kind, workers, server_env, ROOT, log, app=app, reuse_port=opts["reuse_port"]
        )
        self._progress(f"[{label}] starting: {kind} with {workers} worker(s)")
        try:
            server.start()
            client = httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=30)
            with client:
                _wait_ready(server, client)
                token = _token(client)
                seen, cold_503 = _warm_workers(server, client, token, workers)
            if seen < workers:
                self._progress(f"[{label}] warning: only {seen} of {workers} workers answered")
            workloads = self._workloads(token, opts)
            phase = self._phase_runner(server, env, loadgen, opts, workers)
            if opts["warmup"] > 0:
                for w in workloads:
                    phase(w, opts["warmup"], measure=False)
            rounds = []
            for r in range(opts["rounds"]):
                order = workloads if r % 2 == 0 else list(reversed(workloads))
                measured = {w.name: phase(w, opts["duration"]) for w in order}
                rounds.append(measured)
                self._progress(f"[{label}] round {r + 1}: {_one_line(measured)}")
        finally:
            server.stop()
        run = _aggregate(rounds, opts["batch_size"])
        run = {
            "label": label,
            "server": kind,
            "server_version": _server_version(kind),
            "workers": workers,
            "workers_seen_at_warmup": seen,
            "warmup_503s": cold_503,
            "state": env.state,
            "database": env.database,
            "server_command": server.command,
            **run,
        }
        if opts["rounds"] > 1:
            run["rounds"] = [_round_figures(m, opts["batch_size"]) for m in rounds]
        if opts["dashboards"]:
            run["dashboards_seen"] = getattr(self, "_dashboard_seen", {})
        return run

    def _workloads(self, token: str, opts) -> list[Workload]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        strategy = opts["strategy"]
        self._token_value = token
        extra = []
        if opts["dashboards"]:
            bodies = route_bodies(64, strategy)
            extra.append(Workload("route_dashboards", "POST", "/api/v1/route", headers, bodies))
        if opts["lean_baseline"]:
            auth = {"Authorization": headers["Authorization"]}
            extra.append(Workload("trivial_lean", "GET", "/bench/lean-ping", auth))
        return extra + [
            Workload("trivial", "GET", "/api/v1/ping", {"Authorization": headers["Authorization"]}),
            Workload("route", "POST", "/api/v1/route", headers, route_bodies(64, strategy)),
            Workload(
                "batch",
                "POST",
                "/api/v1/route/batch",
                headers,
                [
                    batch_body(opts["batch_size"], strategy, seed=11),
                    batch_body(opts["batch_size"], strategy, seed=12),
                ],
                count_no_eligible=True,
            ),
        ]

    def _phase_runner(self, server, env, loadgen: str, opts, workers: int):
        use_wrk = loadgen.startswith("wrk")
        kind = server.kind
        profile_dir = Path(opts["profile"]).resolve() if opts["profile"] else None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
        batch_connections = opts["batch_connections"] or 2 * workers
        redis = env.redis_client() if env.redis_url else None

        def phase(workload: Workload, duration: float, measure: bool = True) -> dict:
            connections = batch_connections if workload.name == "batch" else opts["connections"]
            if not server.alive():
                raise BenchError(f"the server exited:\n{server.log_tail()}")
            cpu_before = server.cpu_ticks()
            machine_before = _machine_cpu()
            load_before = os.getloadavg()[0]
            runner = run_wrk if use_wrk else run_python_loadgen
            profiler = raw = None
            if measure and profile_dir is not None:
                raw = profile_dir / f"{kind}-{env.state}-{workers}w-{workload.name}.raw"
                profiler = start_profiler(server.procs[0].pid, duration, raw)
            dashboards = None
            if workload.name == "route_dashboards":
                dashboards = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.performance.bench_dashboards",
                        "--port",
                        str(server.port),
                        "--token",
                        self._token_value,
                        "-n",
                        str(opts["dashboards"]),
                        "--seconds",
                        str(duration + 30),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                time.sleep(1.0)  # let them connect and receive their hello
            try:
                result = runner(workload, server.port, duration, connections, env.var_dir)
            except Exception as exc:
                raise BenchError(f"{workload.name}: {exc}\n{server.log_tail()}") from None
            finally:
                if dashboards is not None:
                    dashboards.terminate()
                    seen = dashboards.communicate(timeout=30)[0].strip().splitlines()
                    self._dashboard_seen = json.loads(seen[-1]) if seen else {}
                if profiler is not None:
                    try:
                        profiler.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        profiler.terminate()
                        profiler.wait()
            cpu_after = server.cpu_ticks()
            machine = {k: v - machine_before[k] for k, v in _machine_cpu().items()}
            if raw is not None and raw.exists():
                raw.with_suffix(".txt").write_text(summarise_profile(raw))
            if redis is not None:
                # The history stream is never flushed here; keep the scratch db small.
                redis.delete("moe:history")
            if not measure:
                return {}
            return {
                "result": result,
                "connections": connections,
                "cpu_s_by_process": {
                    pid: (cpu_after[pid] - cpu_before.get(pid, 0)) / CLOCK_TICKS
                    for pid in cpu_after
                },
                "loadavg_1m": round((load_before + os.getloadavg()[0]) / 2, 2),
                "machine_cpu_s": machine,
            }

        return phase

    def _progress(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


# --- server helpers ----------------------------------------------------------------------------


def _wait_ready(server: ServerProcess, client: httpx.Client) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"the server exited during startup:\n{server.log_tail()}")
        try:
            if client.get("/api/v1/ping").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"the server did not answer within {READY_TIMEOUT_S:.0f} s")


def _token(client: httpx.Client) -> str:
    _django_setup()  # the demo login's name and password live with the seed command
    from registry.management.commands.seed_demo_fleet import (
        DEFAULT_DEMO_PASSWORD,
        DEMO_USERNAME,
    )

    password = os.environ.get("MOE_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
    response = client.post(
        "/api/v1/auth/token/", json={"username": DEMO_USERNAME, "password": password}
    )
    if response.status_code != 200:
        raise BenchError(f"could not get a token: {response.status_code} {response.text}")
    return response.json()["access"]


def _warm_workers(
    server: ServerProcess, client: httpx.Client, token: str, workers: int
) -> tuple[int, int]:
    """Route on fresh connections until every worker has answered (each worker's request ids
    carry its own prefix). Returns (distinct workers seen, 503 answers seen while warming)."""
    body = json.loads(route_bodies(1)[0])
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    url = f"http://{HOST}:{server.port}/api/v1/route"
    seen: set[str] = set()
    cold_503 = 0

    def one() -> str | None:
        response = httpx.post(url, json=body, headers=headers, timeout=30)
        if response.status_code == 503:
            return None  # a worker answering before its fleet snapshot is loaded
        if response.status_code != 200:
            raise BenchError(f"route answered {response.status_code}: {response.text}")
        return worker_prefix(response.json()["request_id"])

    deadline = time.monotonic() + 60
    with concurrent.futures.ThreadPoolExecutor(max_workers=2 * workers) as pool:
        while len(seen) < workers and time.monotonic() < deadline:
            answers = list(pool.map(lambda _: one(), range(4 * workers)))
            cold_503 += answers.count(None)
            seen.update(a for a in answers if a is not None)
    return len(seen), cold_503


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moe_project.settings")
    import django

    django.setup()


def _argv(opts: dict) -> list[str]:
    """The options of this run as command-line arguments (defaults left out)."""
    defaults = vars(build_parser().parse_args([]))
    out = []
    for key, value in opts.items():
        if value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [f"{flag}={v}" for v in value]
        else:
            out.append(f"{flag}={value}")
    return out


def _server_version(kind: str) -> str:
    module = __import__(kind)
    return getattr(module, "__version__", "?")


def _machine_cpu() -> dict[str, float]:
    """CPU seconds so far: the whole machine busy (``/proc/stat``, all cores), redis-server
    (every process of that name), and this process's reaped children (the load generator,
    which runs to the end of each phase) plus itself: so a phase can say where the cores
    went (the server's own share is read from its process tree)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    redis = sum(_named_cpu_ticks("redis-server").values())
    own = os.times()
    return {
        "busy": (user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
        # Interrupt handling, not charged to any process: loopback TCP (wrk <-> server <->
        # redis-server) is mostly processed here.
        "irq": (irq + softirq) / CLOCK_TICKS,
        "redis": redis / CLOCK_TICKS,
        "loadgen": own.children_user + own.children_system,
        "bench": own.user + own.system,
    }


def _named_cpu_ticks(comm: str) -> dict[int, int]:
    """pid -> CPU ticks of every process whose command name is ``comm``."""
    return {pid: ticks for pid, (name, _, ticks) in proc_stats().items() if name == comm}


def _machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
    }


# --- figures ---------------------------------------------------------------------------------


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


def _phase_figures(measures: list[dict], name: str, batch_size: int) -> dict:
    """Figures for one endpoint over one or more rounds (throughput over the summed time,
    latency percentiles as the median of the rounds')."""
    results: list[PhaseResult] = [m["result"] for m in measures]
    ok = sum(r.ok for r in results)
    seconds = sum(r.duration_s for r in results)
    cpu = sum(sum(m["cpu_s_by_process"].values()) for m in measures)
    rate = ok / seconds if seconds else 0.0
    figures = {
        "path": {
            "trivial": "/api/v1/ping",
            "trivial_lean": "/bench/lean-ping",
            "route": "/api/v1/route",
            "route_dashboards": "/api/v1/route",
        }.get(name, "/api/v1/route/batch"),
        "requests_per_s": round(rate, 1),
        "p50_ms": _ms(statistics.median(r.latency_us["p50"] for r in results)),
        "p90_ms": _ms(statistics.median(r.latency_us["p90"] for r in results)),
        "p99_ms": _ms(statistics.median(r.latency_us["p99"] for r in results)),
        "mean_ms": _ms(statistics.median(r.latency_us["mean"] for r in results)),
        "responses_2xx": ok,
        "non_2xx": sum(r.other for r in results),
        "socket_errors": sum(sum(r.errors.values()) for r in results),
        "duration_s": round(seconds, 2),
        "connections": measures[0]["connections"],
        "server_cpu_ms_per_request": round(1000 * cpu / ok, 3) if ok else None,
        "server_cpu_cores_used": round(cpu / seconds, 2) if seconds else None,
        "loadavg_1m": round(statistics.mean(m["loadavg_1m"] for m in measures), 2),
    }
    if all("machine_cpu_s" in m for m in measures) and seconds:
        # Where the machine's cores went during the phase: the server, redis-server, the load
        # generator, this benchmark, interrupts, and everything else (other people's work).
        spent = {
            k: sum(m["machine_cpu_s"][k] for m in measures) for k in measures[0]["machine_cpu_s"]
        }
        cores = {
            "busy": spent["busy"],
            "server": cpu,
            "redis": spent["redis"],
            "loadgen": spent["loadgen"],
            "bench": spent["bench"],
            "irq": spent["irq"],
        }
        accounted = cpu + spent["redis"] + spent["loadgen"] + spent["bench"] + spent["irq"]
        cores["other"] = max(0.0, spent["busy"] - accounted)
        figures["machine_cores"] = {k: round(v / seconds, 2) for k, v in cores.items()}
        if spent["redis"] and ok:
            unit = batch_size if name == "batch" else 1
            figures["redis_cpu_us_per_item"] = round(1e6 * spent["redis"] / (ok * unit), 2)
    if len(measures[0]["cpu_s_by_process"]) > 1:
        per_pid: dict[int, float] = {}
        for m in measures:
            for pid, s in m["cpu_s_by_process"].items():
                per_pid[pid] = per_pid.get(pid, 0.0) + s
        figures["server_cpu_s_by_process"] = {str(p): round(s, 2) for p, s in per_pid.items()}
    if name == "batch":
        figures["calls_per_s"] = figures.pop("requests_per_s")
        figures["items_per_call"] = batch_size
        figures["decisions_per_s"] = round(rate * batch_size, 1)
        figures["no_eligible_items"] = sum(r.no_eligible for r in results)
        figures["server_cpu_us_per_decision"] = (
            round(1e6 * cpu / (ok * batch_size), 2) if ok else None
        )
        figures["server_cpu_ms_per_call"] = figures.pop("server_cpu_ms_per_request")
    return figures


def _ratios(trivial: dict, route: dict) -> dict:
    ratio = route["requests_per_s"] / trivial["requests_per_s"] if trivial["requests_per_s"] else 0
    cpu_t, cpu_r = trivial["server_cpu_ms_per_request"], route["server_cpu_ms_per_request"]
    return {
        "route_trivial_ratio": round(ratio, 3),
        # What the ratio would be with the server CPU-bound and alone on its cores.
        "route_trivial_cpu_ratio": round(cpu_t / cpu_r, 3) if cpu_t and cpu_r else None,
    }


def _round_figures(measured: dict, batch_size: int) -> dict:
    figures = {n: _phase_figures([measured[n]], n, batch_size) for n in measured}
    slim = {
        "trivial_rps": figures["trivial"]["requests_per_s"],
        "route_rps": figures["route"]["requests_per_s"],
        "route_p50_ms": figures["route"]["p50_ms"],
        "route_p99_ms": figures["route"]["p99_ms"],
        "batch_decisions_per_s": figures["batch"]["decisions_per_s"],
        "loadavg_1m": figures["route"]["loadavg_1m"],
    }
    slim.update(_ratios(figures["trivial"], figures["route"]))
    if "trivial_lean" in figures:
        lean = _ratios(figures["trivial_lean"], figures["route"])
        slim["route_lean_ratio"] = lean["route_trivial_ratio"]
        slim["route_lean_cpu_ratio"] = lean["route_trivial_cpu_ratio"]
    return slim


def _aggregate(rounds: list[dict], batch_size: int) -> dict:
    figures = {
        name: _phase_figures([r[name] for r in rounds], name, batch_size)
        for name in ("trivial", "route", "batch")
    }
    figures = dict(figures)
    if "route_dashboards" in rounds[0]:
        with_dash = _phase_figures([r["route_dashboards"] for r in rounds], "route", batch_size)
        with_dash["path"] = "/api/v1/route (with live-feed clients connected)"
        figures["route_dashboards"] = with_dash
        base = figures["route"]["requests_per_s"]
        figures["route_dashboards"]["vs_route_without"] = (
            round(with_dash["requests_per_s"] / base, 3) if base else None
        )
    if "trivial_lean" in rounds[0]:
        figures["trivial_lean"] = _phase_figures(
            [r["trivial_lean"] for r in rounds], "trivial_lean", batch_size
        )
    out = dict(figures)
    out.update(_ratios(figures["trivial"], figures["route"]))
    if "trivial_lean" in figures:
        lean = _ratios(figures["trivial_lean"], figures["route"])
        out["route_lean_ratio"] = lean["route_trivial_ratio"]
        out["route_lean_cpu_ratio"] = lean["route_trivial_cpu_ratio"]
    problems = []
    for name, f in figures.items():
        if f["non_2xx"] or f["socket_errors"]:
            problems.append(f"{name}: {f['non_2xx']} non-2xx, {f['socket_errors']} socket errors")
    if figures["batch"]["no_eligible_items"]:
        problems.append(f"batch: {figures['batch']['no_eligible_items']} no_eligible_service")
    out["valid"] = not problems
    out["problems"] = problems
    out["targets"] = {
        "route_ge_70pct_of_trivial": out["route_trivial_ratio"] >= TARGET_ROUTE_RATIO,
        "batch_ge_50k_decisions_per_s": figures["batch"]["decisions_per_s"]
        >= TARGET_BATCH_DECISIONS,
    }
    return out


def _one_line(measured: dict) -> str:
    parts = []
    for name, m in measured.items():
        r: PhaseResult = m["result"]
        parts.append(f"{name} {r.ok_per_s():.0f}/s p50 {_ms(r.latency_us['p50'])}ms")
    return ", ".join(parts)


def _summary(runs: list[dict]) -> dict:
    by_key = {(r["server"], r["state"], r["workers"]): r for r in runs}
    summary: dict = {}
    comparisons = []
    for (server, state, workers), run in by_key.items():
        if server != "uvicorn" or ("daphne", state, workers) not in by_key:
            continue
        other = by_key[("daphne", state, workers)]
        comparisons.append(
            {
                "setup": f"{state}/{workers}w",
                "route_rps_uvicorn": run["route"]["requests_per_s"],
                "route_rps_daphne": other["route"]["requests_per_s"],
                "trivial_rps_uvicorn": run["trivial"]["requests_per_s"],
                "trivial_rps_daphne": other["trivial"]["requests_per_s"],
                "batch_decisions_per_s_uvicorn": run["batch"]["decisions_per_s"],
                "batch_decisions_per_s_daphne": other["batch"]["decisions_per_s"],
                "faster_for_route": "uvicorn"
                if run["route"]["requests_per_s"] >= other["route"]["requests_per_s"]
                else "daphne",
            }
        )
    if comparisons:
        summary["uvicorn_vs_daphne"] = comparisons
    for server in ("uvicorn", "daphne"):
        local1 = by_key.get((server, "local", 1))
        redis1 = by_key.get((server, "redis", 1))
        redis2 = by_key.get((server, "redis", 2))
        scale = {}
        if local1 and redis1:
            scale["route_redis_vs_local_1w"] = _rel(redis1, local1, "route", "requests_per_s")
            scale["batch_redis_vs_local_1w"] = _rel(redis1, local1, "batch", "decisions_per_s")
        if redis1 and redis2:
            scale["route_2w_vs_1w_redis"] = _rel(redis2, redis1, "route", "requests_per_s")
            scale["trivial_2w_vs_1w_redis"] = _rel(redis2, redis1, "trivial", "requests_per_s")
            scale["batch_2w_vs_1w_redis"] = _rel(redis2, redis1, "batch", "decisions_per_s")
        if scale:
            summary[f"scale_out_{server}"] = scale
    summary["all_targets_met"] = all(all(r["targets"].values()) for r in runs)
    summary["all_runs_valid"] = all(r["valid"] for r in runs)
    return summary


def _rel(a: dict, b: dict, phase: str, key: str) -> float | None:
    return round(a[phase][key] / b[phase][key], 3) if b[phase][key] else None


def _table(result: dict) -> str:
    lines = [
        f"bench_http on {result['machine']['cpus']} CPU(s), load generator: "
        f"{result['settings']['loadgen']}, {result['settings']['duration_s']:g} s per phase x "
        f"{result['settings']['rounds']} round(s)",
        "",
        f"{'setup':<22} {'trivial/s':>10} {'route/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'ratio':>6} {'cpu-ratio':>9} {'batch calls/s':>13} {'decisions/s':>11}  valid",
    ]
    for run in result["runs"]:
        t, r, b = run["trivial"], run["route"], run["batch"]
        lines.append(
            f"{run['label']:<22} {t['requests_per_s']:>10.0f} {r['requests_per_s']:>9.0f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {run['route_trivial_ratio']:>6.2f} "
            f"{run['route_trivial_cpu_ratio'] or 0:>9.2f} {b['calls_per_s']:>13.1f} "
            f"{b['decisions_per_s']:>11.0f}  {'yes' if run['valid'] else 'NO'}"
        )
        if "route_lean_ratio" in run:
            lean = run["trivial_lean"]
            lines.append(
                f"    lean baseline /bench/lean-ping {lean['requests_per_s']:.0f}/s: route / it "
                f"{run['route_lean_ratio']:.2f}, CPU ratio {run['route_lean_cpu_ratio'] or 0:.2f}"
            )
        lines.append(
            f"    CPU per request trivial / route: {t['server_cpu_ms_per_request']} / "
            f"{r['server_cpu_ms_per_request']} ms; batch {b['server_cpu_us_per_decision']} "
            f"us/decision; load {r['loadavg_1m']}"
        )
        for problem in run["problems"]:
            lines.append(f"    ! {problem}")
    lines.append("")
    lines.append(json.dumps(result["summary"], indent=2))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
