"""Online learning shared by every worker, through a Redis stream (``MOE_SHARED_LEARNING``).

Without it each web worker learns only from the outcomes reported to it: with N workers a
worker sees about 1/N of them, learns N times more slowly and notices a failing service only
after failures of its own. With Redis configured, the worker that receives an outcome also
appends ``(service, request type, complexity, reward)`` to the stream ``moe:learn``, queued on
the same pipeline as the outcome's history record (no extra round trip); every worker follows
the stream in a background thread (``XREAD BLOCK``, its own connection, nothing on the request
path) and feeds the other workers' outcomes to its own learner. Every worker's learner thus
sees every outcome, within a few milliseconds, in nearly the same order.

The stream is capped (``MAXLEN ~ 20,000``): a worker that falls that far behind, or starts,
goes on from the newest entry (a worker starts from the active version's learner state, as
before). When Redis is unreachable the follower retries once a second and each worker learns
from its own outcomes meanwhile.

The same follower reads the stream of 429 cool-downs, ``moe:cooldowns``
(routing/shared_cooldowns.py), in the same ``XREAD``: it runs whenever Redis is configured,
and follows ``moe:learn`` only with ``MOE_SHARED_LEARNING``.
"""

from __future__ import annotations

import logging
import threading
import weakref

from routing.shared_cooldowns import CATCH_UP_COUNT, COOLDOWN_KEY, apply_cooldowns

logger = logging.getLogger(__name__)

LEARN_KEY = "moe:learn"
LEARN_MAXLEN = 20_000
READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_S = 1.0
_COOLDOWN_KEY = COOLDOWN_KEY.encode()


def queue_shared_outcome(pipe, token, service_id, request_type, complexity, reward) -> None:
    """Queue one outcome for the other workers on the caller's pipeline."""
    fields = {
        "w": token,
        "s": service_id,
        "t": request_type,
        "c": repr(float(complexity)),
        "r": repr(float(reward)),
    }
    pipe.xadd(LEARN_KEY, fields, maxlen=LEARN_MAXLEN, approximate=True)


class LearningFollower(threading.Thread):
    """Feeds the outcomes other workers received to ``router``'s learner (when ``learn``), and
    the cool-downs they started to ``router.cooldowns``. Stops when the router is gone (reset
    or garbage) or :meth:`stop` is called."""

    def __init__(self, router, redis_url: str, token: str, *, learn: bool = True) -> None:
        super().__init__(name="moe-learning-follower", daemon=True)
        self._router = weakref.ref(router)
        self._url = redis_url
        self._token = token.encode()
        self.learns = learn
        self._stop_event = threading.Event()
        self.applied = 0  # outcomes of other workers fed to the learner (tests, status)
        self.cooldowns_applied = 0  # cool-downs of other workers started here (tests, status)
        # Set once the stream positions are known and the cool-downs in force applied.
        self.ready = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(
            self._url, socket_timeout=BLOCK_MS / 1000 + 2.0, socket_connect_timeout=0.5
        )
        positions: dict[str, bytes] | None = None
        try:
            while not self._stop_event.is_set():
                try:
                    if positions is None:
                        positions = self._start(client)
                        if positions is None:
                            return
                        self.ready.set()
                    entries = client.xread(positions, count=READ_COUNT, block=BLOCK_MS)
                except redis.RedisError as exc:
                    logger.debug("shared learning: Redis unavailable (%s); retrying", exc)
                    self._stop_event.wait(RETRY_S)
                    continue
                router = self._router()
                if router is None or self._stop_event.is_set():
                    return
                for stream, items in entries or ():
                    if stream == _COOLDOWN_KEY:
                        last, applied = apply_cooldowns(router.cooldowns, items, self._token)
                        self.cooldowns_applied += applied
                        positions[COOLDOWN_KEY] = last or positions[COOLDOWN_KEY]
                    else:
                        last = self._apply(router.engine.learner, items)
                        positions[LEARN_KEY] = last or positions[LEARN_KEY]
                del router
        finally:
            client.close()

    def _start(self, client) -> dict[str, bytes] | None:
        """Where to read from: after the newest entries. The cool-downs still in force among
        the newest ``CATCH_UP_COUNT`` are applied first (a worker that starts, or whose
        Redis was away, honours them too). None when the router is gone."""
        pipe = client.pipeline(transaction=False)
        pipe.xrevrange(COOLDOWN_KEY, count=CATCH_UP_COUNT)
        if self.learns:
            pipe.xrevrange(LEARN_KEY, count=1)
        replies = pipe.execute()
        router = self._router()
        if router is None:
            return None
        recent = replies[0]
        _, applied = apply_cooldowns(router.cooldowns, reversed(recent), self._token)
        self.cooldowns_applied += applied
        positions = {COOLDOWN_KEY: recent[0][0] if recent else b"0-0"}
        if self.learns:
            positions[LEARN_KEY] = replies[1][0][0] if replies[1] else b"0-0"
        return positions

    def _apply(self, learner, items) -> bytes | None:
        last = None
        for entry_id, fields in items:
            last = entry_id
            if fields.get(b"w") == self._token:
                continue  # this worker learned it when the outcome arrived
            try:
                learner.observe(
                    fields[b"s"].decode(),
                    fields[b"t"].decode(),
                    float(fields[b"c"]),
                    float(fields[b"r"]),
                )
            except (KeyError, ValueError, UnicodeDecodeError):
                logger.warning("shared learning: malformed entry %s skipped", entry_id)
                continue
            self.applied += 1
        return last
