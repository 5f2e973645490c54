"""Per-client rate limit in the shared cache (Redis when configured), a fixed window counter.

DRF's SimpleRateThrottle keeps a list of every request time per client in the cache and
rewrites it on each request, which grows with the rate; a counter per client and window costs
one atomic increment.

The hot endpoints' ASGI handler (routing/api/fast.py) counts the same counter through
:class:`ClientRate`: with Redis state the increment rides on the route's own commit as a
:class:`RateGuard` (one MULTI/EXEC in which every write of the route is conditional on the
counter being within the limit), so a route costs one round trip and a request over the limit
still leaves no trace but its count.
"""

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass

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


# While the cache is down every request would log the same warning: once per this many
# seconds per process instead (with how many went unlimited meanwhile).
WARN_EVERY_S = 10.0
_warned = {"at": float("-inf"), "since": 0}


def _warn_unlimited(exc: Exception) -> None:
    now = time.monotonic()
    _warned["since"] += 1
    if now - _warned["at"] >= WARN_EVERY_S:
        logger.warning(
            "rate limit not applied, cache unavailable (%d requests since the last warning): %s",
            _warned["since"],
            exc,
        )
        _warned["at"], _warned["since"] = now, 0


def _prefix() -> str:
    # Tests give each run of counters its own cache KEY_PREFIX; honour it here too.
    return f"moe:{settings.CACHES['default'].get('KEY_PREFIX', '')}:"


def _rate(scope: str) -> tuple[int | None, int | None]:
    return SimpleRateThrottle.parse_rate(None, api_settings.DEFAULT_THROTTLE_RATES.get(scope))


def _window_key(scope: str, ident: str, duration: int, now: float) -> tuple[str, int]:
    window = int(now // duration)
    return f"{_prefix()}throttle:{scope}:{ident}:{window}", window


def queue_count(pipe, key: str, ttl: int):
    """Queue a window counter's increment on a Redis pipeline (sync or asyncio): its first
    reply is the new count; the key expires ``ttl`` seconds after the window's first count."""
    pipe.incr(key)
    pipe.expire(key, ttl, nx=True)
    return pipe


def _count(key: str, duration: int) -> int:
    """Increment ``key`` and return the new count (raises the cache backend's errors)."""
    client = _redis_client()
    if client is not None:
        # One round trip on a process-wide pool. (Django's cache object is per request
        # under ASGI, which means a new connection and EXISTS + INCR every time.)
        pipe = client.pipeline(transaction=False)
        return queue_count(pipe, key, int(duration) + 1).execute()[0]
    if _uses_local_memory():
        # One process (the embedded default): a plain counter, no pickling round trip.
        return _local_count(key, duration)
    try:
        return cache.incr(key)
    except ValueError:
        # First request of the window (or the key expired): create it; add() loses no
        # increment when two workers race, as the loser falls back to incr().
        return 1 if cache.add(key, 1, timeout=duration + 1) else cache.incr(key)


_async_clients = weakref.WeakKeyDictionary()  # event loop -> asyncio client of _redis_client


def _async_client():
    """An asyncio client of :func:`_redis_client` for the running loop (None: that
    connection cannot be copied, e.g. SSL)."""
    from telemetry.state.redis_store import async_client_for_loop

    return async_client_for_loop(_async_clients, _redis_client())


async def _count_async(client, key: str, duration: int) -> int:
    """:func:`_count` through ``client``, an asyncio client."""
    pipe = client.pipeline(transaction=False)
    return (await queue_count(pipe, key, int(duration) + 1).execute())[0]


@dataclass(slots=True)
class RateGuard:
    """A rate-limit counter for the router to increment in its commit (``Router.route``'s
    ``guard``): after the commit ``count`` is the counter's new value, or None when it was
    not counted there (Redis unreachable: the limit fails open, as the throttle does)."""

    key: str
    limit: int
    ttl: int
    count: int | None = None

    @property
    def over(self) -> bool:
        return self.count is not None and self.count > self.limit

    def queue(self, pipe) -> None:
        """Queue the counter's increment on ``pipe`` (the router's commit)."""
        queue_count(pipe, self.key, self.ttl)


class ClientRate:
    """One authenticated request's rate limit, counted as :class:`ClientRateThrottle` counts
    it (same counter key, same window, same fail-open rule), for callers outside DRF."""

    scope = "user"

    def __init__(self, user_pk) -> None:
        self.limit, self.duration = _rate(self.scope)
        self.now = time.time()
        if self.limit is not None:
            self.key, self.window = _window_key(self.scope, f"u{user_pk}", self.duration, self.now)

    @property
    def enabled(self) -> bool:
        return self.limit is not None

    def allowed_now(self) -> bool:
        """Count the request now; False when it is over the limit (fails open)."""
        if self.limit is None:
            return True
        try:
            return _count(self.key, self.duration) <= self.limit
        except Exception as exc:  # the cache backend's own errors (redis.RedisError, OSError)
            _warn_unlimited(exc)
            return True

    async def allowed_now_async(self) -> bool:
        """:meth:`allowed_now` awaited on the running loop: with Redis, the count's round trip
        waits there instead of in a thread, which would contend for the GIL with the loop."""
        if self.limit is None:
            return True
        if _redis_client() is None:
            return self.allowed_now()  # a local counter or Django's cache: no network wait
        client = _async_client()
        if client is None:
            return await asyncio.to_thread(self.allowed_now)
        try:
            return await _count_async(client, self.key, self.duration) <= self.limit
        except Exception as exc:  # as allowed_now: the limit fails open
            _warn_unlimited(exc)
            return True

    def guard(self) -> RateGuard | None:
        """The counter as a RateGuard for the route's Redis commit (None when unlimited)."""
        if self.limit is None:
            return None
        return RateGuard(self.key, self.limit, int(self.duration) + 1)

    def wait(self) -> float:
        return (self.window + 1) * self.duration - self.now


class ClientRateThrottle(BaseThrottle):
    """Fails open: when the shared cache is unreachable, requests are allowed (and logged),
    because refusing all traffic while Redis is down is worse than not limiting it."""

    scope = "user"

    def __init__(self) -> None:
        self.num_requests, self.duration = _rate(self.scope)
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
        key, window = _window_key(self.scope, ident, self.duration, now)
        try:
            count = self._count(key)
        except Exception as exc:  # the cache backend's own errors (redis.RedisError, OSError)
            _warn_unlimited(exc)
            return True
        if count > self.num_requests:
            self._wait = (window + 1) * self.duration - now
            return False
        return True

    def _count(self, key: str) -> int:
        return _count(key, self.duration)

    def wait(self) -> float:
        return self._wait
