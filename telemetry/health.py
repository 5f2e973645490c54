"""Health checks for the database, Redis (when configured) and the router."""

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


def check_celery() -> dict:
    from telemetry.heartbeat import last_beat

    stamp = last_beat("flush_history")
    if stamp is None:
        return {"status": "unknown", "detail": "no job has run yet"}
    age = time.time() - stamp
    status = "ok" if age <= CELERY_STALE_AFTER_S else "stale"
    return {"status": status, "last_job_age_s": round(age, 1)}


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
