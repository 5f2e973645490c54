"""Health checks for the database, Redis (when configured), the Celery jobs and the router."""

import time

from django.conf import settings
from django.db import connection


def check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; report it, never raise
        return {"status": "down", "error": type(exc).__name__, "vendor": connection.vendor}
    elapsed = (time.perf_counter() - started) * 1000
    return {"status": "ok", "vendor": connection.vendor, "latency_ms": round(elapsed, 3)}


def check_redis() -> dict:
    if not settings.REDIS_URL:
        return {"status": "not_configured"}
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
        client.ping()
    except redis.RedisError as exc:
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


# The flush job runs every 5 s by default; three missed runs means the worker or beat is gone.
CELERY_STALE_AFTER_S = 30.0
START_WORKER = "celery -A moe_project worker -B (or workers plus one celery beat)"


# A health report lists at most this many jobs whose worker was lost.
LOST_JOBS_LISTED = 10


def _lost_jobs() -> list[dict]:
    """API jobs STARTED by a worker lost since (telemetry/heartbeat.py), for as long as the
    broker would take to hand them out again (an hour when it never does); bounded reads."""
    from django.conf import settings

    from moe_project.celery import app
    from moe_project.jobs import redelivery
    from telemetry import heartbeat

    redelivered_after, _ = redelivery(app)
    lost = heartbeat.lost_jobs(
        report_for_s=redelivered_after or 3600.0,
        forget_after_s=settings.CELERY_RESULT_EXPIRES.total_seconds(),
    )
    return [
        {
            "task_id": task_id,
            "task": record.get("task"),
            "worker": worker.node,
            "worker_last_seen_s": worker.last_seen_s,
            "worker_restarted": worker.restarted,
        }
        for task_id, record, worker in lost[:LOST_JOBS_LISTED]
    ]


def _lost_detail(lost: list[dict]) -> str:
    first = lost[0]
    how = (
        "has been started again since"
        if first["worker_restarted"]
        else f"was last seen {first['worker_last_seen_s']:.0f} s ago"
        if first["worker_last_seen_s"] is not None
        else "has stopped"
    )
    others = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
    return (
        f"a job's worker was lost: {first['task']} job {first['task_id']}{others} was started "
        f"by {first['worker']}, which {how}; the job is not running: queue it again (its "
        "status says when the broker would hand it out again)"
    )


def check_celery() -> dict:
    """``ok`` when jobs run (any job: a worker without beat runs the ones the API queues),
    ``unknown`` before the first, ``stale`` when the periodic flush job stopped, ``degraded``
    when a job has waited longer than ``MOE_JOB_PICKUP_SECONDS`` with no worker taking any, or
    when a job queued through the API was STARTED by a worker lost since."""
    from telemetry import heartbeat

    now = time.time()
    stamps = heartbeat.last_beats(("flush_history", heartbeat.JOB_RAN, heartbeat.WAITING))
    flushed, waiting = stamps["flush_history"], stamps[heartbeat.WAITING]
    ran = max((s for s in (flushed, stamps[heartbeat.JOB_RAN]) if s is not None), default=None)
    report: dict = {}
    if ran is not None:
        report["last_job_age_s"] = round(now - ran, 1)
    if waiting is not None:
        report["waiting_job_age_s"] = round(now - waiting, 1)
    lost = _lost_jobs()
    if lost:
        report["lost_jobs"] = lost
    if waiting is not None and now - waiting > heartbeat.pickup_seconds():
        return {
            "status": "degraded",
            **report,
            "detail": (
                f"no Celery worker seems to be consuming the queue: a job has waited "
                f"{now - waiting:.0f} s and no worker has picked up any job since it was queued "
                f"(none is running, or all are busy); start one: {START_WORKER}"
            ),
        }
    if lost:
        return {"status": "degraded", **report, "detail": _lost_detail(lost)}
    if ran is None:
        return {"status": "unknown", **report, "detail": "no job has run yet"}
    if flushed is not None and now - flushed > CELERY_STALE_AFTER_S:
        detail = (
            f"the periodic flush job last ran {now - flushed:.0f} s ago: are celery beat and a "
            "worker running?"
        )
        return {"status": "stale", **report, "detail": detail}
    if flushed is None:
        report["detail"] = "jobs run, but no periodic job has run yet: is celery beat running?"
    return {"status": "ok", **report}


def check_router() -> dict:
    from routing.runtime import get_router

    router = get_router()
    snapshot = router.snapshot()
    store = router.store
    # An idle worker only notices Redis is back when it next touches state: do it now.
    store.view(snapshot)
    degraded = bool(getattr(store, "degraded", False))
    report = {
        "status": "degraded" if degraded else "ok",
        "state_backend": type(store).__name__,
        "services": len(snapshot),
        "registry_version": snapshot.version,
        "gate_version": router.gate_version,
    }
    if hasattr(store, "status"):
        report["state"] = store.status()
    return report


def check_all() -> dict:
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "celery": check_celery(),
        "router": check_router(),
    }
    if checks["database"]["status"] == "down":
        overall = "down"
    elif any(c["status"] in ("down", "degraded", "stale") for c in checks.values()):
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checks": checks}
