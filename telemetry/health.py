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


def check_all() -> dict:
    checks = {"database": check_database(), "redis": check_redis()}
    if checks["database"]["status"] == "down":
        overall = "down"
    elif checks["redis"]["status"] == "down":
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checks": checks}
