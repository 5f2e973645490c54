"""The flush: buffered records into the database in bulk, each routed request exactly once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
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
    dumps,
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
    """Write records to the database in one transaction; returns the result and the records
    (outcomes, amendments) still without a row, to carry to the next flush.

    PostgreSQL takes :func:`_write_postgresql` (COPY, then set-based statements) for
    ``VENDOR_WRITER_MIN_RECORDS`` records or more; every other database, and a few records
    (an outcome written at once, a quiet flush), the ORM (:func:`_write_with_orm`). Both
    give the same rows."""
    from django.db import connection

    decisions, outcomes, amendments = _collect(records)
    write = _write_with_orm
    if len(decisions) + len(outcomes) + len(amendments) >= VENDOR_WRITER_MIN_RECORDS:
        write = VENDOR_WRITERS.get(connection.vendor, _write_with_orm)
    with transaction.atomic():
        return write(decisions, outcomes, amendments)


# A decision's id -> its record; an outcome's id -> the outcome to store; the amendments in
# order, each with whether it was folded into a decision record of the same chunk.
Collected = tuple[dict[str, dict], dict[str, dict], list[tuple[dict, bool]]]


def _collect(records: Iterable[dict]) -> Collected:
    decisions: dict[str, dict] = {}
    outcomes: dict[str, dict] = {}
    amendments: list[tuple[dict, bool]] = []
    for rec in expand_records(records):
        kind = rec.get("k")
        if kind == "d":
            # A decision delivered twice is one decision: the first copy stays (an amendment
            # may already be folded into it).
            if rec["id"] not in decisions:
                decisions[rec["id"]] = rec
        elif kind == "o":
            # The primary service's report wins over the others of a top-k request.
            if rec.get("pr", True) or rec["id"] not in outcomes:
                outcomes[rec["id"]] = rec
        elif kind == "a":
            target = decisions.get(rec["id"])
            if target is not None:  # fold into the decision before it is inserted
                target.update(sel=rec["sel"], r=rec["r"], ne=not rec["sel"])
                if rec.get("np"):
                    target["p"] = None
            # Kept even when folded: if the decision is already in the table (delivered
            # again with this amendment), the insert skips it and the amendment is an update.
            amendments.append((rec, target is not None))
    return decisions, outcomes, amendments


def _carry(rec: dict, now: float) -> bool:
    return now - rec["at"] < CARRY_MAX_AGE_S


OUTCOME_FIELDS = [
    "success",
    "outcome_service",
    "latency_ms",
    "status_code",
    "reward",
    "reported_at",
]


def _write_with_orm(
    decisions: dict[str, dict], outcomes: dict[str, dict], amendments: list[tuple[dict, bool]]
) -> tuple[FlushResult, list[dict]]:
    """Any database: model instances, ``bulk_create``, an UPDATE per amendment and a
    ``bulk_update`` of the outcomes."""
    from routing.models import RoutingDecision

    result = FlushResult()
    existing: set[str] = set()
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
        RoutingDecision.objects.bulk_create(rows, batch_size=DB_BATCH_SIZE, ignore_conflicts=True)
        result.decisions = len(rows)
    carried: list[dict] = []
    now = time.time()
    for rec, folded in amendments:
        if folded and rec["id"] not in existing:
            continue  # inserted with it
        changes = {
            "selected_services": rec["sel"],
            "primary_service": rec["sel"][0] if rec["sel"] else "",
            "reason": rec["r"],
            "no_eligible_service": not rec["sel"],
        }
        if rec.get("np"):
            changes["propensity"] = None
        updated = RoutingDecision.objects.filter(request_id=rec["id"]).update(**changes)
        if not updated and _carry(rec, now):
            carried.append(rec)
    if outcomes:
        found = {
            row.request_id: row
            for row in RoutingDecision.objects.filter(request_id__in=list(outcomes))
        }
        changed = []
        for rid, rec in outcomes.items():
            row = found.get(rid)
            if row is None:
                if _carry(rec, now):
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
        RoutingDecision.objects.bulk_update(changed, OUTCOME_FIELDS, batch_size=DB_BATCH_SIZE)
        result.outcomes = len(changed)
    result.carried = len(carried)
    return result, carried


# -- PostgreSQL ---------------------------------------------------------------------------
#
# The ORM path spends most of a flush in Python building SQL: bulk_create resolves an
# expression per value, and bulk_update writes a CASE WHEN per row and column, after loading
# every outcome's whole row (docs/PERFORMANCE.md, "The history flush"). Here:
#
# * decisions: COPY straight into the table; if one is there already, back to a savepoint
#   and COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT (request_id) DO
#   NOTHING (see _insert_decisions);
# * amendments: COPY into a temporary table, one UPDATE ... FROM (every amendment of the
#   chunk, folded or not: applying one again to the row it was folded into changes nothing);
# * outcomes: the same, a secondary report only where none is stored yet; the outcomes
#   without a row are then read back to be carried (a few: reported ahead of the flush).

DECISION_COLUMNS = (
    "request_id", "request_type", "features", "requested_strategy", "strategy", "override_id",
    "selected_services", "primary_service", "scores", "confidence", "reason",
    "no_eligible_service", "decision_ms", "propensity", "client", "decided_at",
)  # fmt: skip
AMENDMENT_COLUMNS = (
    "request_id", "selected_services", "primary_service", "reason", "no_eligible_service",
)  # fmt: skip
OUTCOME_COLUMNS = ("request_id", *OUTCOME_FIELDS)


def _json(value) -> str:
    return dumps(value).decode()  # (a record not from a buffer may hold numpy scalars)


def _decision_rows(decisions: dict[str, dict]) -> Iterator[tuple]:
    """Each decision as a row of ``DECISION_COLUMNS`` (JSON columns as JSON text)."""
    stamps: dict[float, datetime] = {}  # a batch's decisions share one time
    for rid, rec in decisions.items():
        at = rec["at"]
        decided_at = stamps.get(at)
        if decided_at is None:
            decided_at = stamps[at] = _ts(at)
        sel = rec["sel"]
        yield (
            rid, rec["t"], _json(rec["f"]), rec["rs"], rec["s"], rec["o"], _json(sel),
            sel[0] if sel else "", _json(rec["sc"]), rec["c"], rec["r"], rec["ne"], rec["ms"],
            rec.get("p"), rec.get("cl") or "", decided_at,
        )  # fmt: skip


def _amendment_rows(amendments: list[tuple[dict, bool]]) -> list[tuple]:
    """One row per amended decision: its last amendment, the propensity voided (``np``)
    if any of them voided it, as applying them one by one would."""
    last: dict[str, dict] = {}
    voided: set[str] = set()
    for rec, _ in amendments:
        last[rec["id"]] = rec
        if rec.get("np"):
            voided.add(rec["id"])
    return [
        (rid, _json(sel), sel[0] if sel else "", rec["r"], not sel, rid in voided)
        for rid, rec in last.items()
        for sel in (rec["sel"],)
    ]


def _outcome_rows(outcomes: dict[str, dict]) -> Iterator[tuple]:
    for rid, rec in outcomes.items():
        yield (
            rid, rec["ok"], rec["svc"], rec["lat"], rec["code"], rec.get("rw"), _ts(rec["at"]),
            rec.get("pr", True),
        )  # fmt: skip


def _copy_to_temp(cursor, name: str, columns: Iterable[str], extra: str, rows) -> None:
    """A temporary table ``name`` with the types of the history table's ``columns`` (plus
    ``extra`` columns), dropped at commit, filled with ``rows`` by COPY."""
    from routing.models import RoutingDecision

    table = RoutingDecision._meta.db_table
    columns = ", ".join(columns)
    # Dropped first: a caller's outer transaction (a test) may hold one from an earlier apply.
    cursor.execute(f"DROP TABLE IF EXISTS {name}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS "
        f"SELECT {columns}{extra} FROM {table} WITH NO DATA"
    )
    with cursor.cursor.copy(f"COPY {name} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_decisions(cursor, decisions: dict[str, dict]) -> int:
    """Insert the decisions not in the table yet; how many. COPY straight into the table
    (every index updated as the rows stream in), in a savepoint; if one is there already (a
    decision delivered again), back to the savepoint, then COPY into a temporary table and
    INSERT ... ON CONFLICT DO NOTHING. Rows go in request id order either way, so two
    flushes inserting some of the same ids take their locks in one order (no deadlock)."""
    import psycopg
    from django.db import connection
    from django.utils import timezone

    from routing.models import RoutingDecision

    table = RoutingDecision._meta.db_table
    # The other columns as a new model instance has them: auto_now(_add) stamps, and field
    # defaults (the outcome's columns are empty until it is reported).
    rest, values = [], []
    stamp = timezone.now()
    for field in RoutingDecision._meta.concrete_fields:
        if field.primary_key or field.column in DECISION_COLUMNS:
            continue
        value = stamp if field.column in ("created_at", "updated_at") else None
        if value is None and field.has_default():
            value = field.get_db_prep_save(field.get_default(), connection)
        rest.append(field.column)
        values.append(value)
    tail = tuple(values)
    ordered = dict(sorted(decisions.items()))
    try:
        with transaction.atomic():
            columns = ", ".join((*DECISION_COLUMNS, *rest))
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in _decision_rows(ordered):
                    copy.write_row(row + tail)
        return len(ordered)
    except psycopg.errors.UniqueViolation:
        pass
    _copy_to_temp(cursor, "moe_flush_decisions", DECISION_COLUMNS, "", _decision_rows(ordered))
    columns = ", ".join(DECISION_COLUMNS)
    cursor.execute(
        f"INSERT INTO {table} ({columns}, {', '.join(rest)}) "
        f"SELECT {columns}, {', '.join(['%s'] * len(rest))} FROM moe_flush_decisions "
        "ORDER BY request_id ON CONFLICT (request_id) DO NOTHING",
        values,
    )
    return cursor.rowcount


def _write_postgresql(
    decisions: dict[str, dict], outcomes: dict[str, dict], amendments: list[tuple[dict, bool]]
) -> tuple[FlushResult, list[dict]]:
    from django.db import connection

    from routing.models import RoutingDecision

    table = RoutingDecision._meta.db_table
    result = FlushResult()
    carried: list[dict] = []
    now = time.time()
    with connection.cursor() as cursor:
        if decisions:
            result.decisions = _insert_decisions(cursor, decisions)
        if amendments:
            rows = _amendment_rows(amendments)
            _copy_to_temp(cursor, "moe_flush_amendments", AMENDMENT_COLUMNS, ", true AS np", rows)
            cursor.execute(
                f"UPDATE {table} AS d SET selected_services = a.selected_services, "
                "primary_service = a.primary_service, reason = a.reason, "
                "no_eligible_service = a.no_eligible_service, "
                "propensity = CASE WHEN a.np THEN NULL ELSE d.propensity END "
                "FROM moe_flush_amendments AS a WHERE d.request_id = a.request_id "
                "RETURNING d.request_id"
            )
            if cursor.rowcount < len(rows):
                updated = {rid for (rid,) in cursor.fetchall()}
                carried += [
                    rec for rec, _ in amendments if rec["id"] not in updated and _carry(rec, now)
                ]
        if outcomes:
            _copy_to_temp(
                cursor,
                "moe_flush_outcomes",
                OUTCOME_COLUMNS,
                ", true AS pr",
                _outcome_rows(outcomes),
            )
            sets = ", ".join(f"{column} = o.{column}" for column in OUTCOME_FIELDS)
            cursor.execute(
                f"UPDATE {table} AS d SET {sets} FROM moe_flush_outcomes AS o "
                "WHERE d.request_id = o.request_id AND (o.pr OR d.reported_at IS NULL)"
            )
            result.outcomes = cursor.rowcount
            # Without a row: carried (a secondary report skipped above has one).
            cursor.execute(
                "SELECT o.request_id FROM moe_flush_outcomes AS o WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} AS d WHERE d.request_id = o.request_id)"
            )
            for (rid,) in cursor.fetchall():
                rec = outcomes[rid]
                if _carry(rec, now):
                    carried.append(rec)
                else:
                    logger.warning("history: dropping outcome for unknown request %s", rid)
    result.carried = len(carried)
    return result, carried


# connection.vendor -> its own writer; any other database takes the ORM's. Below this many
# records the ORM's two or three statements beat creating temporary tables.
VENDOR_WRITERS = {"postgresql": _write_postgresql}
VENDOR_WRITER_MIN_RECORDS = 200


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
