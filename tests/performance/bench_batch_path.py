"""The batch route path in process: what a worker spends per decision of a 1,000-item
``POST /api/v1/route/batch``, without the HTTP server, as CPU time or as instructions.

    python -m tests.performance.bench_batch_path                   # CPU us per decision
    python -m tests.performance.bench_batch_path --instructions    # instructions (valgrind)
    python -m tests.performance.bench_batch_path --items 200 --batches 20 --chunks 5

Each batch takes the lean handler's steps (``routing.api.fast._answer``: read the body, parse,
validate, route, commit with local state, build and serialise the answer) on the demo fleet
with every capacity raised, in a throwaway environment (temp var dir, SQLite, no Redis; the
registry is not re-polled while measuring). Bodies are ``bench_load.batch_body``, the ones
``bench_http`` sends.

CPU time on a shared machine moves by +-15% from one minute to the next, so comparing two
trees by time needs many alternating runs. ``--instructions`` runs the same steps under
valgrind's callgrind with counting switched on only around the measured batches: the count is
the same to ~0.5% run after run, whatever else the machine does, so two trees compare in one
run each (fewer instructions is not always less time, but here it has tracked it).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRUBBED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MOE_STATE_BACKEND")
SETTINGS = "moe_project.settings"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.performance.bench_batch_path")
    parser.add_argument("--items", type=int, default=1000, help="Requests per batch.")
    parser.add_argument("--batches", type=int, default=200, help="Measured batches (time).")
    parser.add_argument("--chunks", type=int, default=40, help="Time: min/median over chunks.")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="Count instructions with valgrind (callgrind) instead of timing.",
    )
    parser.add_argument(
        "--redis-url",
        help="Redis live state in this scratch db (flushed; db 0 is refused): also reports "
        "redis-server's CPU per decision, per command (INFO commandstats).",
    )
    parser.add_argument(
        "--worker", action="store_true", help=argparse.SUPPRESS
    )  # the process valgrind runs
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    if opts.instructions and not opts.worker:
        result = _count_instructions(opts)
    else:
        path = _BatchPath(opts.items, opts.redis_url)
        if opts.worker:
            return path.serve_callgrind(opts.batches)
        result = path.time(opts.batches, opts.chunks)
    print(json.dumps(result, indent=2))
    return 0


class _BatchPath:
    """A set-up environment and the two bodies that alternate."""

    def __init__(self, items: int, redis_url: str | None = None) -> None:
        var_dir = tempfile.mkdtemp(prefix="moe-batch-path-")
        atexit.register(shutil.rmtree, var_dir, ignore_errors=True)
        os.environ["MOE_VAR_DIR"] = var_dir
        for name in SCRUBBED:
            os.environ.pop(name, None)
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
        os.environ["MOE_REGISTRY_POLL_SECONDS"] = "3600"
        self.redis = None
        if redis_url:
            import redis

            if redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("db", 0) == 0:
                raise SystemExit("--redis-url: give a scratch db (not 0); it is flushed")
            os.environ["REDIS_URL"] = redis_url
            self.redis = redis.Redis.from_url(redis_url)
            self.redis.flushdb()
        import asyncio

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from registry.models import Service
        from registry.services import register_service
        from routing.api import fast
        from routing.runtime import get_router
        from tests.performance.bench_load import batch_body

        call_command("migrate", interactive=False, verbosity=0)
        with open(os.devnull, "w") as quiet:
            call_command("seed_demo_fleet", verbosity=0, stdout=quiet)
        for service_id in Service.objects.values_list("service_id", flat=True):
            register_service({"service_id": service_id, "max_capacity": 1_000_000})
        self.items = items
        self.user = get_user_model().objects.get(username="operator")
        self.bodies = [batch_body(items, None, seed=s) for s in (11, 12)]
        self.fast = fast
        get_router().snapshot()
        self.loop = asyncio.new_event_loop()
        self.scope = {"type": "http", "method": "POST", "path": fast.BATCH_PATH}

    def one(self, i: int) -> None:
        body = self.bodies[i % 2]

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        answer = self.loop.run_until_complete(self.fast._answer(self.scope, receive, {}, self.user))
        if answer.status != 200:
            raise RuntimeError(f"batch answered {answer.status}: {answer.body[:300]!r}")

    def warm(self) -> None:
        for i in range(10):
            self.one(i)

    def time(self, batches: int, chunks: int) -> dict:
        self.warm()
        per_chunk = max(1, batches // chunks)
        figures = []
        if self.redis is not None:
            self.redis.config_resetstat()
        for _ in range(chunks):
            start = time.process_time()
            for i in range(per_chunk):
                self.one(i)
            figures.append((time.process_time() - start) * 1e6 / (per_chunk * self.items))
        result = {
            "items_per_batch": self.items,
            "batches": per_chunk * chunks,
            "cpu_us_per_decision": {
                "min": round(min(figures), 2),
                "median": round(statistics.median(figures), 2),
            },
        }
        if self.redis is not None:
            # Every command since the reset (the workers' view refreshes included), per decision.
            decisions = per_chunk * chunks * self.items
            stats = self.redis.info("commandstats")
            per_command = {
                name.removeprefix("cmdstat_"): round(v["usec"] / decisions, 3)
                for name, v in stats.items()
            }
            result["redis_usec_per_decision"] = {
                "all": round(sum(per_command.values()), 3),
                **dict(sorted(per_command.items(), key=lambda kv: -kv[1])),
            }
        return result

    def serve_callgrind(self, batches: int) -> int:
        """Under valgrind: warm up, then wait for the parent to switch counting on."""
        self.warm()
        print("READY", flush=True)
        sys.stdin.readline()
        for i in range(batches):
            self.one(i)
        print("DONE", flush=True)
        sys.stdin.readline()
        return 0


def _count_instructions(opts) -> dict:
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind (callgrind) is not installed: apt-get install valgrind")
    batches = min(opts.batches, 6)  # ~50x slower under valgrind: a few batches suffice
    out_dir = Path(tempfile.mkdtemp(prefix="moe-callgrind-"))
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.out.%p",
        sys.executable,
        "-m",
        "tests.performance.bench_batch_path",
        "--worker",
        "--instructions",
        "--items",
        str(opts.items),
        "--batches",
        str(batches),
        *(["--redis-url", opts.redis_url] if opts.redis_url else []),
    ]
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        cmd,
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _expect(child, "READY")
        subprocess.run(["callgrind_control", "-i", "on", str(child.pid)], check=True, **_QUIET)
        child.stdin.write("go\n")
        child.stdin.flush()
        _expect(child, "DONE")
        subprocess.run(["callgrind_control", "-i", "off", str(child.pid)], check=True, **_QUIET)
        child.stdin.write("exit\n")
        child.stdin.flush()
        child.wait(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
    total = max(_totals(path) for path in out_dir.glob("callgrind.out.*"))
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "items_per_batch": opts.items,
        "batches": batches,
        "instructions_per_decision": round(total / (batches * opts.items)),
    }


_QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _expect(child: subprocess.Popen, word: str) -> None:
    for line in child.stdout:
        if line.strip() == word:
            return
    raise RuntimeError(f"the worker under valgrind ended before {word}")


def _totals(path: Path) -> int:
    """The instruction total of one callgrind output file (0 if it has none): its largest
    ``summary:``/``totals:`` line (the header's summary may read 0, the totals come last)."""
    return max(
        (
            int(line.split()[1])
            for line in path.read_text(errors="replace").splitlines()
            if line.startswith(("summary:", "totals:"))
        ),
        default=0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
