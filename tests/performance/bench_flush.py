"""The history flush: how many routed decisions one ``flush_history`` writes per second.

    python -m tests.performance.bench_flush                                  # SQLite, spool
    python -m tests.performance.bench_flush \\
        --database-url postgres://root@127.0.0.1:5432/moe_flush_bench \\
        --redis-url redis://127.0.0.1:6379/9 --batches 100 --runs 4      # PostgreSQL, stream
    ... --paths generic,auto     # alternate the generic (ORM) path and the vendor's own
    ... --profile                # cProfile of one flush: where its time goes
    ... --flushers 1,2           # one flush against two at once (processes; the stream)

Each run empties the table, then fills the buffer (the Redis stream ``moe:history`` with
``--redis-url``, else a spool segment) with ``--batches`` batch records of ``--items`` decisions
each, built as the router builds them (``routing.history.records.decision_records``), plus the
outcomes of ``--outcomes`` of the decisions (primary, some also a secondary report), a few
breaker amendments, one batch sent twice and outcomes of requests that are not routed yet
(carried); then it times one ``flush_history`` and checks that every decision landed exactly
once, as ``expand_records`` gives it, with its outcome. Figures: decisions/s, and records
(decisions + outcomes + amendments) per second.

The database (its name must contain ``bench``) is dropped and recreated; of the Redis db only
the ``moe:history`` key is deleted (before and after). ``--paths``: ``auto`` is what
``flush_history`` does on this database, ``generic`` the ORM path every database can take
(``routing.history.flush.VENDOR_WRITERS`` emptied), the same run alternating between them;
``transactions_by_writer`` says which writer each transaction took (below
``VENDOR_WRITER_MIN_RECORDS`` records, the ORM's).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRUBBED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MOE_STATE_BACKEND")
SERVICES = tuple(f"svc-{name}" for name in ("alpha", "bravo", "charlie", "delta", "echo", "fox"))
REASONS = (
    "adaptive: learned score {:.3f} over {} eligible",
    "top_k: best {} of {} by learned score",
    "exploration draw among {} of {} eligible",
    "panic routing: every breaker open",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.performance.bench_flush")
    parser.add_argument("--batches", type=int, default=40, help="Batch records per run.")
    parser.add_argument("--items", type=int, default=1000, help="Decisions per batch.")
    parser.add_argument(
        "--outcomes", type=float, default=0.2, help="Share of decisions with an outcome."
    )
    parser.add_argument("--runs", type=int, default=1, help="Runs per path (alternating).")
    parser.add_argument(
        "--paths", default="auto", help="Comma-separated, alternated: auto, generic."
    )
    parser.add_argument("--database-url", help="A scratch PostgreSQL database (recreated).")
    parser.add_argument("--redis-url", help="Fill the Redis stream of this db (not 0).")
    parser.add_argument("--profile", action="store_true", help="cProfile one flush per path.")
    parser.add_argument(
        "--flushers",
        default="1",
        help="Comma-separated, alternated: flushes run at once, each in its own process (as "
        "Celery worker processes; with --redis-url), e.g. 1,2. The time is until every record "
        "is written: a last flush applies what one flusher carried for another.",
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    paths = opts.paths.split(",")
    if set(paths) - {"auto", "generic"}:
        raise SystemExit("--paths: auto and/or generic")
    try:
        flushers = [int(n) for n in opts.flushers.split(",")]
    except ValueError:
        raise SystemExit("--flushers: comma-separated counts, e.g. 1,2") from None
    if min(flushers) < 1 or (max(flushers) > 1 and not opts.redis_url):
        raise SystemExit("--flushers: at least 1; more than 1 needs --redis-url (the stream)")
    bench = _FlushBench(opts)
    try:
        runs = []
        for i in range(opts.runs):
            for path in paths:
                for n in flushers:
                    runs.append(
                        bench.run(
                            path,
                            seed=opts.seed + i,
                            profile=opts.profile and i == 0 and n == 1,
                            flushers=n,
                        )
                    )
    finally:
        bench.cleanup()
    result = {
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "database": bench.vendor,
        "buffer": "redis stream" if opts.redis_url else "spool",
        "batches": opts.batches,
        "items_per_batch": opts.items,
        "runs": runs,
        "decisions_per_s": {
            (path if len(flushers) == 1 else f"{path}, {n} flushers"): _summary(
                [r["decisions_per_s"] for r in runs if r["path"] == path and r["flushers"] == n]
            )
            for path in paths
            for n in flushers
        },
    }
    print(json.dumps(result, indent=2))
    failed = [r for r in runs if r["check"] != "ok"]
    if failed:
        print(f"flush check failed in {len(failed)} of {len(runs)} runs", file=sys.stderr)
    return 1 if failed else 0


# Where a flush's time goes: (file suffix, function) -> label; cumulative seconds each (they
# nest: the INSERT includes building its SQL; model instances are built before it).
PHASES = {
    ("redis/commands/core.py", "xreadgroup"): "read the stream",
    ("~", "<orjson.loads>"): "JSON decoding",
    ("routing/history/flush.py", "_collect"): "collect (expand_records included)",
    ("routing/history/records.py", "expand_records"): "expand_records",
    ("django/db/models/base.py", "__init__"): "model instances",
    ("django/db/models/query.py", "values_list"): "existing query (built)",
    ("django/db/models/query.py", "__iter__"): "queries read (existing, outcome rows)",
    ("django/db/models/query.py", "bulk_create"): "INSERT (bulk_create)",
    ("django/db/models/query.py", "bulk_update"): "outcome bulk_update",
    ("django/db/models/query.py", "update"): "UPDATE (amendments, bulk_update)",
    ("routing/history/flush.py", "_copy_to_temp"): "temporary tables filled (COPY)",
    ("psycopg/cursor.py", "execute"): "statements run (psycopg execute)",
    ("routing/history/flush.py", "_decision_rows"): "COPY rows built",
}


def _phases(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for (suffix, function), label in PHASES.items():
            if name == function and filename.endswith(suffix):
                found[label] = round(found.get(label, 0.0) + cumulative, 3)
    return found


def _summary(values: list[float]) -> dict:
    return {"min": min(values), "median": round(statistics.median(values)), "max": max(values)}


class _FlushBench:
    def __init__(self, opts) -> None:
        self.opts = opts
        self.var_dir = Path(tempfile.mkdtemp(prefix="moe-bench-flush-"))
        atexit.register(shutil.rmtree, self.var_dir, ignore_errors=True)
        for name in SCRUBBED:
            os.environ.pop(name, None)
        os.environ["MOE_VAR_DIR"] = str(self.var_dir)
        os.environ["DJANGO_SETTINGS_MODULE"] = "moe_project.settings"
        self.database_url = opts.database_url
        if self.database_url:
            name = _database_name(self.database_url)
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or "bench" not in name:
                raise SystemExit(f"{name}: the scratch database's name must contain 'bench'")
            self._recreate_database()
            os.environ["DATABASE_URL"] = self.database_url
        self.redis = None
        if opts.redis_url:
            import redis

            self.redis = redis.Redis.from_url(opts.redis_url)
            if self.redis.connection_pool.connection_kwargs.get("db", 0) == 0:
                raise SystemExit("--redis-url: give a scratch db (not 0)")
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", interactive=False, verbosity=0)
        self.vendor = connection.vendor
        self.spool = self.var_dir / "bench-spool"
        self.spool.mkdir()

    # -- the buffer ------------------------------------------------------------------------

    def _records(self, seed: int) -> tuple[list[list[dict]], dict]:
        """Buffer entries (each a list of records, as one ``XADD`` or spool line holds) and
        what the table must hold after the flush."""
        from routing.core.types import Decision, RouteRequest
        from routing.history.records import (
            amend_record,
            decision_records,
            expand_records,
            outcome_record,
        )
        from routing.runtime import Routed

        rnd = random.Random(seed)
        context = [round(rnd.random(), 4) for _ in range(12)]
        candidate_sets = [SERVICES, SERVICES[:4], SERVICES[2:], SERVICES[:2] + SERVICES[3:5]]
        entries: list[list[dict]] = []
        for b in range(self.opts.batches):
            base = f"{seed:x}{b:05x}{rnd.getrandbits(48):012x}"
            requests, routed = [], []
            for i in range(self.opts.items):
                cands = rnd.choice(candidate_sets)
                scores = {s: rnd.random() for s in cands}
                top = sorted(cands, key=scores.__getitem__, reverse=True)
                k = 2 if i % 10 == 0 else 1
                requests.append(
                    RouteRequest(
                        request_type=rnd.choice(("inference", "embedding", "batch")),
                        priority=rnd.random(),
                        complexity=rnd.random(),
                        capabilities=("gpu",) if i % 3 == 0 else (),
                        key=None if i % 4 else f"key-{i}",
                        anomaly_score=None if i % 5 else rnd.random(),
                        payload_size=rnd.randrange(100_000),
                    )
                )
                reason = rnd.choice(REASONS).format(rnd.random(), k, len(cands))
                decision = Decision(
                    selected=tuple(top[:k]),
                    scores=scores,
                    confidence=rnd.random(),
                    strategy="adaptive",
                    requested_strategy="adaptive" if i % 7 else "top_k",
                    reason=reason,
                    latency_ms=rnd.random() / 10,
                    propensity=rnd.random() if i % 9 else None,
                    candidates=tuple(cands),
                )
                routed.append(Routed(f"{base}-{i:x}", decision, None if i % 50 else 7, None))
            entries.append(decision_records(routed, requests, context, "client-1"))
        entries.append(entries[len(entries) // 2])  # a batch sent twice: written once
        expected = {
            rec["id"]: rec for entry in entries for rec in expand_records(entry) if rec["k"] == "d"
        }
        ids = list(expected)
        # Breaker amendments (a few per batch): in their own entries, after the batch.
        for rid in rnd.sample(ids, max(1, len(ids) // 500)):
            rec = expected[rid]
            keep = rec["sel"][1:]
            amend = amend_record(rid, keep, rec["r"] + "; breaker refused at dispatch", True)
            entries.append([amend])
            rec.update(sel=keep, r=amend["r"], ne=not keep, p=None)
        # Outcomes: one entry each, as reports arrive; a top-k request's second service also
        # reports (it never replaces the primary's), and a few are for requests not in the
        # table yet (carried to the next flush).
        outcomes = {}
        for rid in rnd.sample(ids, int(len(ids) * self.opts.outcomes)):
            sel = expected[rid]["sel"]
            if not sel:
                continue
            rec = outcome_record(rid, sel[0], rnd.random() < 0.9, rnd.random() * 900, 200, 0.5)
            outcomes[rid] = rec
            entries.append([rec])
            if len(sel) > 1:
                entries.append([outcome_record(rid, sel[1], False, 1.0, 500, -1.0, False)])
        carried = [
            outcome_record(f"unrouted{seed}-{i}", SERVICES[0], True, 1.0, 200)
            for i in range(max(1, len(ids) // 10_000))
        ]
        entries.extend([rec] for rec in carried)
        return entries, {"decisions": expected, "outcomes": outcomes, "carried": len(carried)}

    def _fill(self, entries: list[list[dict]]) -> None:
        from routing.history.buffers import STREAM_KEY, dumps, seal_local_spools

        if self.redis is not None:
            self.redis.delete(STREAM_KEY)
            pipe = self.redis.pipeline(transaction=False)
            for i, records in enumerate(entries):
                pipe.xadd(STREAM_KEY, {"r": dumps(records)})
                if i % 1000 == 999:
                    pipe.execute()
            pipe.execute()
        else:
            seal_local_spools()  # the previous run's carried outcomes: gone with the rest
            for path in self.spool.iterdir():
                path.unlink()
            blob = b"".join(
                dumps(records[0] if len(records) == 1 else records) + b"\n" for records in entries
            )
            (self.spool / "seg-1-1-bench.ready").write_bytes(blob)

    # -- one run ---------------------------------------------------------------------------

    def _flush_at_once(self, flush_module, n: int):
        """``n`` flushes at once, each in a forked process with its own connections, then one
        more here for what they carried for each other; their results added up."""
        import multiprocessing

        import redis
        from django.db import connections

        connections.close_all()  # a forked child must not share the parent's socket
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        url = self.opts.redis_url

        def flush() -> None:
            part = flush_module.flush_history(
                redis_client=redis.Redis.from_url(url), use_settings=False
            )
            results.put(part.as_dict())
            connections.close_all()

        children = [context.Process(target=flush) for _ in range(n)]
        for child in children:
            child.start()
        parts = [results.get(timeout=600) for _ in children]
        for child in children:
            child.join()
            if child.exitcode != 0:
                raise RuntimeError(f"a flusher exited with {child.exitcode}")
        last = flush_module.flush_history(redis_client=self.redis, use_settings=False)
        total = flush_module.FlushResult(
            decisions=sum(p["decisions"] for p in parts) + last.decisions,
            outcomes=sum(p["outcomes"] for p in parts) + last.outcomes,
            carried=last.carried,
        )
        return total

    def run(self, path: str, seed: int, profile: bool = False, flushers: int = 1) -> dict:
        from routing.history import flush as flush_module
        from routing.models import RoutingDecision

        RoutingDecision.objects.all().delete()
        entries, expected = self._records(seed)
        self._fill(entries)
        # Each transaction's writer, counted (a small one takes the ORM's on any database).
        used: collections.Counter = collections.Counter()

        def counted(name: str, write):
            def counting(*args):
                used[name] += 1
                return write(*args)

            return counting

        writers, orm = flush_module.VENDOR_WRITERS, flush_module._write_with_orm
        saved = dict(writers)
        writers.clear()
        if path == "auto":
            writers.update({vendor: counted(vendor, w) for vendor, w in saved.items()})
        flush_module._write_with_orm = counted("orm", orm)
        profiler = cProfile.Profile() if profile else None
        # The benchmark's own records (what it checks against) stay out of the collector's
        # way: a flushing worker holds none, and full collections scanning them cost this
        # process ~0.3 s each.
        gc.collect()
        gc.freeze()
        try:
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            if flushers > 1:
                result = self._flush_at_once(flush_module, flushers)
            elif self.redis is not None:
                result = flush_module.flush_history(redis_client=self.redis, use_settings=False)
            else:
                result = flush_module.flush_history(self.spool, use_settings=False)
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - started
        finally:
            gc.unfreeze()
            writers.clear()
            writers.update(saved)
            flush_module._write_with_orm = orm
        decisions = len(expected["decisions"])
        amendments = len(decisions_amended := [e for e in entries if e[0]["k"] == "a"])
        figures = {
            "path": path,
            "flushers": flushers,
            # (with several flushers, only the last flush's: the others ran in children)
            "transactions_by_writer": dict(used),
            "decisions": decisions,
            "outcomes": len(expected["outcomes"]),
            "amendments": amendments,
            "seconds": round(elapsed, 3),
            "decisions_per_s": round(decisions / elapsed),
            "records_per_s": round(
                (decisions + len(expected["outcomes"]) + len(decisions_amended)) / elapsed
            ),
        }
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(40)
            print(f"--- profile, {path} path ---\n{out.getvalue()}", file=sys.stderr)
            figures["profile_s"] = _phases(stats)
        figures["check"] = self._verify(result, expected) or "ok"
        return figures

    def _verify(self, result, expected: dict) -> list[str]:
        """Every decision exactly once and as recorded, every outcome applied: what is not."""
        import orjson

        from routing.history.buffers import STREAM_KEY
        from routing.history.flush import _ts
        from routing.models import RoutingDecision

        decisions, outcomes = expected["decisions"], expected["outcomes"]
        problems = []
        if result.decisions != len(decisions):
            problems.append(f"flush says {result.decisions} decisions, {len(decisions)} routed")
        if result.outcomes != len(outcomes):
            problems.append(f"flush says {result.outcomes} outcomes, {len(outcomes)} reported")
        if result.carried != expected["carried"]:
            problems.append(f"{result.carried} carried, {expected['carried']} expected")
        fields = (
            "request_id", "request_type", "features", "requested_strategy", "strategy",
            "override_id", "selected_services", "primary_service", "scores", "confidence",
            "reason", "no_eligible_service", "decision_ms", "propensity", "client",
            "decided_at", "success", "outcome_service", "latency_ms", "status_code", "reward",
            "reported_at",
        )  # fmt: skip
        seen = 0
        for row in RoutingDecision.objects.values_list(*fields).iterator(chunk_size=5000):
            seen += 1
            rec, out = decisions.get(row[0]), outcomes.get(row[0])
            if rec is None:
                problems.append(f"{row[0]}: in the table, never routed")
                continue
            want = (
                rec["id"], rec["t"], rec["f"], rec["rs"], rec["s"], rec["o"], rec["sel"],
                rec["sel"][0] if rec["sel"] else "", rec["sc"], rec["c"], rec["r"], rec["ne"],
                rec["ms"], rec["p"], rec["cl"], _ts(rec["at"]),
            )  # fmt: skip
            want += (
                (out["ok"], out["svc"], out["lat"], out["code"], out["rw"], _ts(out["at"]))
                if out
                else (None, "", None, None, None, None)
            )
            if tuple(row) != want:
                diff = [f for f, a, b in zip(fields, row, want, strict=True) if a != b]
                problems.append(f"{row[0]}: differs in {', '.join(diff)}")
            if len(problems) > 10:
                break
        if seen != len(decisions):
            problems.append(f"{seen} rows for {len(decisions)} routed decisions")
        if self.redis is not None:
            left = sum(
                len(orjson.loads(fields[b"r"]))
                for _, fields in self.redis.xrange(STREAM_KEY)
                if fields
            )
            if left != expected["carried"]:
                problems.append(f"{left} records left in the stream, {expected['carried']} carried")
        return problems[:10]

    # -- the scratch database --------------------------------------------------------------

    def _admin(self):
        import psycopg

        admin = self.database_url.split("?")[0].rstrip("/").rsplit("/", 1)[0] + "/postgres"
        return psycopg.connect(admin, autocommit=True)

    def _recreate_database(self) -> None:
        name = _database_name(self.database_url)
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def cleanup(self) -> None:
        from django.db import connections

        from routing.history.buffers import STREAM_KEY

        if self.redis is not None:
            self.redis.delete(STREAM_KEY)
        connections.close_all()
        if self.database_url:
            with self._admin() as conn:
                name = _database_name(self.database_url)
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_name(url: str) -> str:
    return url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())
