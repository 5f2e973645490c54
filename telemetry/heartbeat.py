"""Job heartbeats: each periodic job stamps the time it last ran, so /api/v1/health can tell
whether the Celery worker and beat are alive (with Redis the stamp is shared; otherwise it is a
file under var/, which both the web process and the worker on this machine can read)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings

KEY = "moe:heartbeat:"


def _path(name: str) -> Path:
    return Path(settings.VAR_DIR) / f"heartbeat-{name}"


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def beat(name: str) -> None:
    now = time.time()
    if settings.REDIS_URL:
        import redis

        try:
            _redis().set(KEY + name, now, ex=24 * 3600)
            return
        except redis.RedisError:
            pass
    _path(name).write_text(str(now))


def last_beat(name: str) -> float | None:
    if settings.REDIS_URL:
        import redis

        try:
            value = _redis().get(KEY + name)
            if value is not None:
                return float(value)
        except redis.RedisError:
            pass
    try:
        return float(_path(name).read_text())
    except (OSError, ValueError):
        return None
