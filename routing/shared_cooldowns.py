"""429 cool-downs shared by every worker on the same Redis, through the stream ``moe:cooldowns``.

A service that answers a forwarded call with 429 and ``Retry-After`` is left out of routing
until then (:class:`routing.forwarding.Cooldowns`, a local dict the route decision reads). With
Redis configured, the worker that got the 429 also appends ``(its token, service, deadline)``
to ``moe:cooldowns``; every worker's follower thread (:class:`routing.shared_learning.
LearningFollower`, the same ``XREAD BLOCK`` as ``moe:learn``) starts the same cool-down in its
own dict, so every worker stops routing to the service within milliseconds, not each after a
429 of its own. Nothing is added to the route decision (still a local lookup), nor to the 429
path: :class:`CooldownPublisher` appends from a thread of its own, so a slow or unreachable
Redis never delays or fails the request (the local cool-down applies at once either way; an
entry that could not be written is sent again once Redis answers, if still in force).

The deadline is wall-clock time (``time.time()``): monotonic clocks differ between processes
and hosts. A receiving worker applies what is left of it, capped by its own
``MOE_PROXY_MAX_COOLDOWN_SECONDS``; an entry whose deadline has passed is ignored. A worker
that starts applies the cool-downs still in force among the stream's newest ``CATCH_UP_COUNT``
entries before it follows the stream; after a Redis outage its follower reads on from where it
stopped, so it sees what other workers published meanwhile. Clocks of hosts that disagree by
a few milliseconds end a cool-down that much earlier or later there. The stream is separate
from ``moe:learn`` so a worker of an earlier version, during a rolling upgrade, never reads an
entry it cannot parse; it is capped at ``MAXLEN ~ 1000``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref

logger = logging.getLogger(__name__)

COOLDOWN_KEY = "moe:cooldowns"
COOLDOWN_MAXLEN = 1000
CATCH_UP_COUNT = 200
RETRY_S = 1.0
# A deadline less than this much later than the one last published for the service is not
# published again (a burst of 429s from one service gives one entry, not one per 429).
REPUBLISH_SLACK_S = 0.5


def queue_cooldown(pipe, token: str, service_id: str, until: float) -> None:
    """Queue one cool-down (``until``: ``time.time()`` deadline) on ``pipe``."""
    fields = {"w": token, "s": service_id, "u": repr(float(until))}
    pipe.xadd(COOLDOWN_KEY, fields, maxlen=COOLDOWN_MAXLEN, approximate=True)


def apply_cooldowns(cooldowns, items, token: bytes) -> tuple[bytes | None, int]:
    """Start, in ``cooldowns``, the cool-downs of ``items`` (stream entries) that other workers
    published and that are still in force. Returns ``(last entry id, how many applied)``."""
    last, applied = None, 0
    now = time.time()
    for entry_id, fields in items:
        last = entry_id
        if fields.get(b"w") == token:
            continue  # started here when the 429 arrived
        try:
            service_id = fields[b"s"].decode()
            until = float(fields[b"u"])
            if not service_id or not math.isfinite(until):
                raise ValueError(until)
        except (KeyError, ValueError, UnicodeDecodeError):
            logger.warning("shared cool-downs: malformed entry %s skipped", entry_id)
            continue
        if until > now:
            cooldowns.start(service_id, until - now)  # capped by this worker's setting
            applied += 1
    return last, applied


class CooldownPublisher:
    """Appends this worker's cool-downs to ``moe:cooldowns`` from a thread of its own (started
    on the first one), through ``router.redis_client``. :meth:`publish` only notes the entry."""

    def __init__(self, router, token: str) -> None:
        self._router = weakref.ref(router)
        self._token = token
        self._pending: dict[str, float] = {}  # service -> wall-clock deadline
        self._published: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.published = 0  # entries appended (tests, status)

    def publish(self, service_id: str, until: float) -> None:
        """Have the other workers cool ``service_id`` down until ``until`` (``time.time()``)."""
        with self._lock:
            if self._stopped or until <= self._published.get(service_id, 0.0) + REPUBLISH_SLACK_S:
                return
            if until > self._pending.get(service_id, 0.0):
                self._pending[service_id] = until
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="moe-cooldown-publisher", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._stop_event.set()
        self._wake.set()

    def _run(self) -> None:
        import redis

        failing = False
        while True:
            self._wake.wait()
            with self._lock:
                if self._stopped:
                    return
                self._wake.clear()
                now = time.time()
                batch = {s: u for s, u in self._pending.items() if u > now}
                self._pending.clear()
            router = self._router()
            if router is None:
                return
            client = router.redis_client
            del router
            if not batch or client is None:
                continue
            try:
                pipe = client.pipeline(transaction=False)
                for service_id, until in batch.items():
                    queue_cooldown(pipe, self._token, service_id, until)
                pipe.execute()
            except redis.RedisError as exc:
                if not failing:
                    logger.warning(
                        "shared cool-downs: Redis unavailable (%s); other workers learn of "
                        "this cool-down once it answers",
                        exc,
                    )
                failing = True
                with self._lock:  # again after a pause, with what came meanwhile
                    for service_id, until in batch.items():
                        if until > self._pending.get(service_id, 0.0):
                            self._pending[service_id] = until
                self._wake.set()
                self._stop_event.wait(RETRY_S)
                continue
            failing = False
            with self._lock:
                self._published = {s: u for s, u in self._published.items() if u > now}
                self._published.update(batch)
                self.published += len(batch)
