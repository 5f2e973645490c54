"""Per-client rate limit in the shared cache (Redis when configured), a fixed window counter.

DRF's SimpleRateThrottle keeps a list of every request time per client in the cache and
rewrites it on each request, which grows with the rate; a counter per client and window costs
one atomic increment.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)
_client = None


def _redis_client():
    global _client
    if _client is None and settings.REDIS_URL:
        import redis

        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
        )
    return _client


_local_counts: dict[str, int] = {}
_local_lock = threading.Lock()


def _uses_local_memory() -> bool:
    return settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")


def _local_count(key: str, duration: float) -> int:
    with _local_lock:
        if len(_local_counts) > 100_000:  # old windows: drop them all, the current refills
            _local_counts.clear()
        count = _local_counts.get(key, 0) + 1
        _local_counts[key] = count
        return count


def _prefix() -> str:
    # Tests give each run of counters its own cache KEY_PREFIX; honour it here too.
    return f"moe:{settings.CACHES['default'].get('KEY_PREFIX', '')}:"


class ClientRateThrottle(BaseThrottle):
    """Fails open: when the shared cache is unreachable, requests are allowed (and logged),
    because refusing all traffic while Redis is down is worse than not limiting it."""

    scope = "user"

    def __init__(self) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.num_requests, self.duration = SimpleRateThrottle.parse_rate(None, rate)
        self._wait = 0.0

    def allow_request(self, request, view) -> bool:
        if self.num_requests is None:
            return True
        ident = (
            f"u{request.user.pk}"
            if request.user and request.user.is_authenticated
            else f"ip{self.get_ident(request)}"
        )
        now = time.time()
        window = int(now // self.duration)
        key = f"{_prefix()}throttle:{self.scope}:{ident}:{window}"
        try:
            count = self._count(key)
        except Exception as exc:  # the cache backend's own errors (redis.RedisError, OSError)
            logger.warning("rate limit not applied, cache unavailable: %s", exc)
            return True
        if count > self.num_requests:
            self._wait = (window + 1) * self.duration - now
            return False
        return True

    def _count(self, key: str) -> int:
        client = _redis_client()
        if client is not None:
            # One round trip on a process-wide pool. (Django's cache object is per request
            # under ASGI, which means a new connection and EXISTS + INCR every time.)
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, int(self.duration) + 1, nx=True)
            return pipe.execute()[0]
        if _uses_local_memory():
            # One process (the embedded default): a plain counter, no pickling round trip.
            return _local_count(key, self.duration)
        try:
            return cache.incr(key)
        except ValueError:
            # First request of the window (or the key expired): create it; add() loses no
            # increment when two workers race, as the loser falls back to incr().
            return 1 if cache.add(key, 1, timeout=self.duration + 1) else cache.incr(key)

    def wait(self) -> float:
        return self._wait
