"""Per-client rate limit in the shared cache (Redis when configured), a fixed window counter.

DRF's SimpleRateThrottle keeps a list of every request time per client in the cache and
rewrites it on each request, which grows with the rate; a counter per client and window costs
one atomic increment.
"""

import logging
import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)


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
        key = f"throttle:{self.scope}:{ident}:{window}"
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
        try:
            return cache.incr(key)
        except ValueError:
            # First request of the window (or the key expired): create it; add() loses no
            # increment when two workers race, as the loser falls back to incr().
            return 1 if cache.add(key, 1, timeout=self.duration + 1) else cache.incr(key)

    def wait(self) -> float:
        return self._wait
