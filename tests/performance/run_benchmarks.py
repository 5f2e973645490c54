"""Run the benchmark set and write one JSON report: ``make bench`` (``make bench ARGS=--quick``).

    python -m tests.performance.run_benchmarks                      # full figures, ~5 min
    python -m tests.performance.run_benchmarks --quick              # every benchmark, small
    python -m tests.performance.run_benchmarks --only core,http --report /tmp/bench.json

Each benchmark (``tests/performance/bench_<what>.py``) runs as its own process, one after the
other (on a 2-core machine two at once would measure each other), with its own full mode or a
quick one; its JSON output goes into the report under its name, with the command, the time it
took and its exit status. Progress goes to stderr, each benchmark's own stderr to a log beside
the report. The report goes to ``--report``, else ``$BENCH_REPORT``, else
``var/bench/report.json``. Exit status 1 when any benchmark failed (its error is in the report).

- ``core``: the routing engine in-process (decisions, batches, load balance);
- ``state``: live-state backends, local vs Redis (a private ``redis-server`` when installed,
  else ``REDIS_URL`` / ``TEST_REDIS_URL`` / 127.0.0.1:6379);
- ``events``: what the live feed costs the route path, 0 and 10 dashboards;
- ``http``: the trivial view, route and batch over HTTP on the README's uvicorn command.

The fleet simulation (decision quality, ``make simulate``) is not part of the set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPORT = ROOT / "var" / "bench" / "report.json"
# A benchmark that runs longer than this is stopped and reported as failed.
TIMEOUT_S = 1800


def _state_args() -> list[str]:
    return ["--spawn-redis"] if shutil.which("redis-server") else []


# name -> (module, full-mode arguments, quick-mode arguments); every one prints JSON on stdout.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "core": ("bench_core", [], ["--quick"]),
    "state": ("bench_state", _state_args(), [*_state_args(), "--ops", "300"]),
    "events": ("bench_events", ["--json"], ["--json", "--seconds", "0.5"]),
    "http": ("bench_http", ["--json"], ["--json", "--duration", "2", "--warmup", "1"]),
}


def run_one(name: str, quick: bool, log_dir: Path) -> dict:
    module, full, small = BENCHMARKS[name]
    cmd = [sys.executable, "-m", f"tests.performance.{module}", *(small if quick else full)]
    command = "python -m " + " ".join(cmd[2:])
    print(f"[{name}] {command}", file=sys.stderr, flush=True)
    log = log_dir / f"{module}.log"
    started = time.monotonic()
    with open(log, "wb") as stderr:
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            proc = None
    entry: dict = {
        "command": command,
        "elapsed_s": round(time.monotonic() - started, 1),
        "log": str(log),
    }
    if proc is None:
        return {**entry, "ok": False, "error": f"timed out after {TIMEOUT_S} s"}
    entry["exit_status"] = proc.returncode
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        return {**entry, "ok": False, "error": "no JSON on stdout", "stderr_tail": tail}
    return {**entry, "ok": proc.returncode == 0, "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs of every benchmark")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {','.join(BENCHMARKS)}"
    )
    parser.add_argument("--report", default=None, help="where to write the JSON report")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    report_path = Path(args.report or os.environ.get("BENCH_REPORT") or DEFAULT_REPORT)
    report_path.parent.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    report = {
        "report": "moe-router benchmarks",
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "benchmarks": {},
    }
    for name in names:
        report["benchmarks"][name] = entry = run_one(name, args.quick, report_path.parent)
        status = "ok" if entry["ok"] else f"FAILED: {entry.get('error', entry.get('exit_status'))}"
        print(f"[{name}] {status} in {entry['elapsed_s']} s", file=sys.stderr, flush=True)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["all_ok"] = all(e["ok"] for e in report["benchmarks"].values())
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {report_path}", file=sys.stderr)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
