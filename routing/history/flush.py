"""The flush: buffered records into the database in bulk, each routed request exactly once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction

from routing.history.buffers import (
    STREAM_GROUP,
    STREAM_KEY,
    SpoolBuffer,
    pid_alive,
    read_records,
    seal_local_spools,
    spool_dir,
)
from routing.history.records import expand_records

logger = logging.getLogger(__name__)

# Rows per INSERT/UPDATE statement: large enough to amortise round trips, small enough to
# stay under SQLite's variable limit and PostgreSQL's comfortable statement size.
DB_BATCH_SIZE = 500
# Stream entries read per XREADGROUP call, at most; a single route's entry holds a record or
# two, a batch's a whole batch (up to MOE_BATCH_MAX_ITEMS decisions): after the first read the
# count follows the entries' size, so that one read holds about STREAM_READ_BYTES.
STREAM_READ_COUNT = 5000
STREAM_FIRST_READ_COUNT = 100
STREAM_READ_BYTES = 16 << 20
# Decisions and outcomes written per transaction, about (an entry is never split): one read of
# batch entries (~140 KB of JSON and ~2 KB of worker memory per decision) was one transaction
# of hundreds of thousands of rows, minutes long and a gigabyte of memory.
MAX_RECORDS_PER_APPLY = 20_000
# Outcomes whose decision never shows up are dropped (with a warning) after this long.
CARRY_MAX_AGE_S = 24 * 3600.0


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
    for rec in expand_records(records):
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
                if rec.get("np"):
                    target["p"] = None
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
                    client=rec.get("cl") or "",
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
            changes = {
                "selected_services": rec["sel"],
                "primary_service": rec["sel"][0] if rec["sel"] else "",
                "reason": rec["r"],
                "no_eligible_service": not rec["sel"],
            }
            if rec.get("np"):
                changes["propensity"] = None
            updated = RoutingDecision.objects.filter(request_id=rec["id"]).update(**changes)
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
        if path.suffix == ".open" and (pid == my_pid or pid_alive(pid)):
            live_open.append(path)
            continue
        if path.suffix in (".ready", ".open"):
            target = path.with_name(f"{path.stem}.draining-{my_pid}")
            try:
                path.rename(target)
            except FileNotFoundError:
                continue  # another flusher claimed it
            claimed.append(target)
        elif ".draining-" in path.name and not pid_alive(int(path.name.rsplit("-", 1)[1])):
            claimed.append(path)  # a flusher died mid-way; its claim is ours now
    records = [rec for path in claimed + live_open for rec in read_records(path)]
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
    start = "0-0"
    while True:
        start, reclaimed, *_ = client.xautoclaim(
            STREAM_KEY,
            STREAM_GROUP,
            consumer,
            min_idle_time=60_000,
            start_id=start,
            count=STREAM_FIRST_READ_COUNT,
        )
        if reclaimed:
            _apply_entries(client, reclaimed, total)
        if not reclaimed or start in (b"0-0", "0-0"):
            break
    count = STREAM_FIRST_READ_COUNT
    while True:
        answer = client.xreadgroup(STREAM_GROUP, consumer, {STREAM_KEY: ">"}, count=count)
        entries = answer[0][1] if answer else []
        if not entries:
            break
        size = _apply_entries(client, entries, total)
        if len(entries) < count:
            break
        count = max(1, min(STREAM_READ_COUNT, int(STREAM_READ_BYTES * len(entries) / size)))


def _records_in(records: list[dict]) -> int:
    """Decisions and outcomes in ``records`` (a batch record holds a whole batch)."""
    return sum(len(rec["id"]) if rec.get("k") == "b" else 1 for rec in records)


def _apply_entries(client, entries, total: FlushResult) -> int:
    """Apply stream ``entries`` in transactions of about ``MAX_RECORDS_PER_APPLY`` records,
    acknowledging and deleting each transaction's entries once it is written; the entries'
    size in bytes."""
    ids: list = []
    records: list[dict] = []
    held = size = 0
    for eid, fields in entries:
        raw = (fields or {}).get(b"r")
        ids.append(eid)
        if raw:  # (an entry deleted while another flusher held it comes back without fields)
            size += len(raw)
            part = orjson.loads(raw)
            records.extend(part)
            held += _records_in(part)
        if held >= MAX_RECORDS_PER_APPLY:
            _apply_chunk(client, ids, records, total)
            ids, records, held = [], [], 0
    if ids:
        _apply_chunk(client, ids, records, total)
    return max(size, 1)


def _apply_chunk(client, ids: list, records: list[dict], total: FlushResult) -> None:
    part, carried = apply_records(records)
    _merge(total, part)
    if carried:
        client.xadd(STREAM_KEY, {"r": orjson.dumps(carried)})
    client.xack(STREAM_KEY, STREAM_GROUP, *ids)
    client.xdel(STREAM_KEY, *ids)


def flush_history(
    spool_directory: Path | None = None, redis_client=None, *, use_settings: bool = True
) -> FlushResult:
    """Drain the buffers into the database (idempotent; safe to run concurrently).

    ``spool_directory`` defaults to the configured spool folder and ``redis_client`` to a
    client for ``REDIS_URL`` when set (``use_settings=False``: only what is given). Open
    segments of this process are sealed first, so what it buffered is flushed too.
    """
    total = FlushResult()
    seal_local_spools()
    if spool_directory is None and use_settings:
        spool_directory = spool_dir()
    if spool_directory is not None:
        _drain_spool(Path(spool_directory), total)
    if redis_client is None and use_settings and settings.REDIS_URL:
        import redis

        redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=1
        )
    if redis_client is not None:
        import redis

        try:
            _drain_stream(redis_client, total)
        except redis.RedisError as exc:
            logger.warning("history: stream not drained, Redis unavailable: %s", exc)
    return total
