"""Routing history that loses nothing and stays off the hot path.

Decisions and outcomes are appended to a buffer as compact records and written to the
database in bulk by :func:`flush_history` (``manage.py flush_history`` and the Celery job call
it). Two buffers:

* :class:`SpoolBuffer` (embedded default): each process appends JSON lines to its own segment
  file under ``var/history/`` with one ``write()`` per call, so a killed process loses nothing it
  acknowledged. Segments are sealed after a size or age limit and then deleted once flushed.
* :class:`RedisStreamBuffer` (with ``REDIS_URL``): one ``XADD`` per call on a stream, queued on
  the caller's pipeline so a routed request still costs one round trip. Flushers read through a
  consumer group and acknowledge after the database commit; entries a dead flusher left
  pending are reclaimed. If Redis is unreachable the records go to the spool instead.

Inserts ignore request ids already present, and outcomes are plain updates, so applying a
record twice is harmless: after a flush every routed request is in the table exactly once.
Outcomes whose decision is not in the table yet are carried over to the next flush.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

STREAM_KEY = "moe:history"
STREAM_GROUP = "flushers"
# Rows per INSERT/UPDATE statement: large enough to amortise round trips, small enough to
# stay under SQLite's variable limit and PostgreSQL's comfortable statement size.
DB_BATCH_SIZE = 500
# Records read from the stream per XREADGROUP call.
STREAM_READ_COUNT = 5000
# Outcomes whose decision never shows up are dropped (with a warning) after this long.
CARRY_MAX_AGE_S = 24 * 3600.0
SEGMENT_MAX_RECORDS = 5000
SEGMENT_MAX_AGE_S = 2.0


def _spool_dir() -> Path:
    path = Path(getattr(settings, "MOE_HISTORY_DIR", "") or settings.VAR_DIR / "history")
    path.mkdir(parents=True, exist_ok=True)
    return path


class SpoolBuffer:
    """Per-process segment files of JSON lines (see the module docstring)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or _spool_dir()
        self._lock = threading.Lock()
        self._handle = None
        self._path: Path | None = None
        self._count = 0
        self._opened_at = 0.0

    def _open_segment(self) -> None:
        name = f"seg-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        self._path = self.directory / f"{name}.open"
        self._handle = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open on purpose
        self._count = 0
        self._opened_at = time.monotonic()

    def _seal(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._path.rename(self._path.with_suffix(".ready"))
        self._handle = None

    def append(self, records: Sequence[dict]) -> None:
        if not records:
            return
        blob = b"".join(orjson.dumps(r) + b"\n" for r in records)
        with self._lock:
            if self._handle is not None and (
                self._count >= SEGMENT_MAX_RECORDS
                or time.monotonic() - self._opened_at >= SEGMENT_MAX_AGE_S
            ):
                self._seal()
            if self._handle is None:
                self._open_segment()
            self._handle.write(blob)
            self._count += len(records)

    def seal(self) -> None:
        """Close the current segment so the next flush can delete it once applied."""
        with self._lock:
            self._seal()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_records(path: Path) -> list[dict]:
    records = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return records
    for line in raw.split(b"\n"):
        if not line:
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            # Only a torn final line of a segment still being written can fail to parse;
            # it is re-read on the next flush once complete.
            continue
    return records


class RedisStreamBuffer:
    """A Redis stream; ``append`` can queue onto the caller's pipeline."""

    def __init__(self, client, fallback: SpoolBuffer) -> None:
        self.client = client
        self.fallback = fallback

    def queue(self, pipe, records: Sequence[dict]) -> None:
        if records:
            pipe.xadd(STREAM_KEY, {"r": orjson.dumps(list(records))})

    def append(self, records: Sequence[dict]) -> None:
        import redis

        if not records:
            return
        try:
            self.client.xadd(STREAM_KEY, {"r": orjson.dumps(list(records))})
        except redis.RedisError:
            logger.warning("history: Redis unavailable, %d records spooled locally", len(records))
            self.fallback.append(records)


# --- records --------------------------------------------------------------------------------


def decision_record(
    request_id: str, decision, request, override_id: int | None, context=None
) -> dict:
    return {
        "k": "d",
        "id": request_id,
        "t": request.request_type,
        "f": {
            "priority": request.priority,
            "complexity": request.complexity,
            "capabilities": list(request.capabilities),
            "payload_size": request.payload_size,
            "anomaly_score": request.anomaly_score,
            "has_key": request.key is not None,
            "context": context,
            # Who was eligible: what off-policy evaluation of another policy needs.
            "candidates": list(decision.candidates),
        },
        "rs": decision.requested_strategy,
        "s": decision.strategy,
        "o": override_id,
        "sel": list(decision.selected),
        "sc": {k: round(float(v), 6) for k, v in decision.scores.items()},
        "c": round(float(decision.confidence), 6),
        "r": decision.reason[:500],
        "ne": decision.no_eligible_service,
        "ms": round(decision.latency_ms, 4),
        "p": decision.propensity,
        "at": time.time(),
    }


def amend_record(request_id: str, selected: Sequence[str], reason: str) -> dict:
    """A decision whose services a breaker refused at dispatch (a cross-worker race)."""
    return {"k": "a", "id": request_id, "sel": list(selected), "r": reason[:500], "at": time.time()}


def outcome_record(
    request_id, service_id, success, latency_ms, status_code, reward=None, primary=True
) -> dict:
    """``primary``: the outcome of the decision's first service (the one its propensity is
    about); a top-k request's other services report too, but only fill an empty row."""
    return {
        "k": "o",
        "id": request_id,
        "svc": service_id,
        "ok": success,
        "lat": latency_ms,
        "code": status_code,
        "rw": reward,
        "pr": primary,
        "at": time.time(),
    }


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@dataclass
class FlushResult:
    decisions: int = 0
    outcomes: int = 0
    carried: int = 0

    def as_dict(self) -> dict:
        return {"decisions": self.decisions, "outcomes": self.outcomes, "carried": self.carried}


def apply_records(records: Iterable[dict]) -> tuple[FlushResult, list[dict]]:
    """Write records to the database; returns the result and outcomes still without a row."""
    from routing.models import RoutingDecision

    decisions: dict[str, dict] = {}
    outcomes: dict[str, dict] = {}
    amended: list[dict] = []
    for rec in records:
        kind = rec.get("k")
        if kind == "d":
            decisions[rec["id"]] = rec
        elif kind == "o":
            # The primary service's report wins over the others of a top-k request.
            if rec.get("pr", True) or rec["id"] not in outcomes:
                outcomes[rec["id"]] = rec
        elif kind == "a":
            if rec["id"] in decisions:  # fold into the decision before it is inserted
                target = decisions[rec["id"]]
                target.update(sel=rec["sel"], r=rec["r"], ne=not rec["sel"])
            else:
                amended.append(rec)
    result = FlushResult()
    with transaction.atomic():
        if decisions:
            existing = set(
                RoutingDecision.objects.filter(request_id__in=list(decisions)).values_list(
                    "request_id", flat=True
                )
            )
            rows = [
                RoutingDecision(
                    request_id=rid,
                    request_type=rec["t"],
                    features=rec["f"],
                    requested_strategy=rec["rs"],
                    strategy=rec["s"],
                    override_id=rec["o"],
                    selected_services=rec["sel"],
                    primary_service=rec["sel"][0] if rec["sel"] else "",
                    scores=rec["sc"],
                    confidence=rec["c"],
                    reason=rec["r"],
                    no_eligible_service=rec["ne"],
                    decision_ms=rec["ms"],
                    propensity=rec.get("p"),
                    decided_at=_ts(rec["at"]),
                )
                for rid, rec in decisions.items()
                if rid not in existing
            ]
            RoutingDecision.objects.bulk_create(
                rows, batch_size=DB_BATCH_SIZE, ignore_conflicts=True
            )
            result.decisions = len(rows)
        carried: list[dict] = []
        for rec in amended:
            updated = RoutingDecision.objects.filter(request_id=rec["id"]).update(
                selected_services=rec["sel"],
                primary_service=rec["sel"][0] if rec["sel"] else "",
                reason=rec["r"],
                no_eligible_service=not rec["sel"],
            )
            if not updated and time.time() - rec["at"] < CARRY_MAX_AGE_S:
                carried.append(rec)
        if outcomes:
            found = {
                row.request_id: row
                for row in RoutingDecision.objects.filter(request_id__in=list(outcomes))
            }
            changed = []
            now = time.time()
            for rid, rec in outcomes.items():
                row = found.get(rid)
                if row is None:
                    if now - rec["at"] < CARRY_MAX_AGE_S:
                        carried.append(rec)
                    else:
                        logger.warning("history: dropping outcome for unknown request %s", rid)
                    continue
                if not rec.get("pr", True) and row.reported_at is not None:
                    continue  # a secondary report never replaces one already stored
                row.success = rec["ok"]
                row.outcome_service = rec["svc"]
                row.latency_ms = rec["lat"]
                row.status_code = rec["code"]
                row.reward = rec.get("rw")
                row.reported_at = _ts(rec["at"])
                changed.append(row)
            RoutingDecision.objects.bulk_update(
                changed,
                [
                    "success",
                    "outcome_service",
                    "latency_ms",
                    "status_code",
                    "reward",
                    "reported_at",
                ],
                batch_size=DB_BATCH_SIZE,
            )
            result.outcomes = len(changed)
        result.carried = len(carried)
    return result, carried


def _merge(total: FlushResult, part: FlushResult) -> None:
    total.decisions += part.decisions
    total.outcomes += part.outcomes
    total.carried = part.carried


def _drain_spool(directory: Path, total: FlushResult) -> None:
    my_pid = os.getpid()
    claimed: list[Path] = []
    live_open: list[Path] = []
    for path in sorted(directory.glob("seg-*")):
        pid = int(path.name.split("-")[1])
        if path.suffix == ".open" and (pid == my_pid or _pid_alive(pid)):
            live_open.append(path)
            continue
        if path.suffix in (".ready", ".open"):
            target = path.with_name(f"{path.stem}.draining-{my_pid}")
            try:
                path.rename(target)
            except FileNotFoundError:
                continue  # another flusher claimed it
            claimed.append(target)
        elif ".draining-" in path.name and not _pid_alive(int(path.name.rsplit("-", 1)[1])):
            claimed.append(path)  # a flusher died mid-way; its claim is ours now
    records = [rec for path in claimed + live_open for rec in _read_records(path)]
    if not records:
        for path in claimed:
            path.unlink(missing_ok=True)
        return
    part, carried = apply_records(records)
    _merge(total, part)
    if carried:
        SpoolBuffer(directory).append(carried)
    for path in claimed:
        path.unlink(missing_ok=True)


def _drain_stream(client, total: FlushResult) -> None:
    import redis

    try:
        client.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    consumer = f"flusher-{os.getpid()}-{threading.get_ident()}"
    # Entries a dead flusher read but never acknowledged come back after a minute.
    _next, reclaimed, *_ = client.xautoclaim(
        STREAM_KEY, STREAM_GROUP, consumer, min_idle_time=60_000, start_id="0-0", count=100000
    )
    batches = [reclaimed] if reclaimed else []
    while True:
        answer = client.xreadgroup(
            STREAM_GROUP, consumer, {STREAM_KEY: ">"}, count=STREAM_READ_COUNT
        )
        entries = answer[0][1] if answer else []
        if entries:
            batches.append(entries)
        for entries in batches:
            ids = [eid for eid, _ in entries]
            records = [rec for _, fields in entries for rec in orjson.loads(fields[b"r"])]
            part, carried = apply_records(records)
            _merge(total, part)
            if carried:
                client.xadd(STREAM_KEY, {"r": orjson.dumps(carried)})
            client.xack(STREAM_KEY, STREAM_GROUP, *ids)
            client.xdel(STREAM_KEY, *ids)
        batches = []
        if len(entries) < STREAM_READ_COUNT:
            break


def flush_history() -> FlushResult:
    """Drain every buffer into the database (idempotent; safe to run concurrently)."""
    total = FlushResult()
    from routing.runtime import get_router

    router = get_router()
    router.history_spool.seal()
    _drain_spool(router.history_spool.directory, total)
    client = router.redis_client
    if client is not None:
        import redis

        try:
            _drain_stream(client, total)
        except redis.RedisError as exc:
            logger.warning("history: stream not drained, Redis unavailable: %s", exc)
    return total


# Rows deleted per statement when pruning: small enough not to hold long locks.
PRUNE_BATCH_SIZE = 5000


def prune_history(retention_days: float | None = None) -> int:
    """Delete routing history older than ``MOE_HISTORY_RETENTION_DAYS``; returns rows deleted."""
    from datetime import timedelta

    from django.utils import timezone

    from routing.models import RoutingDecision

    days = settings.MOE_HISTORY_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            RoutingDecision.objects.filter(decided_at__lt=cutoff).values_list("id", flat=True)[
                :PRUNE_BATCH_SIZE
            ]
        )
        if not ids:
            return deleted
        deleted += RoutingDecision.objects.filter(id__in=ids).delete()[0]
