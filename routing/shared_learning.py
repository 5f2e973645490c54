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
"""

from __future__ import annotations

import logging
import threading
import weakref

logger = logging.getLogger(__name__)

LEARN_KEY = "moe:learn"
LEARN_MAXLEN = 20_000
READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_S = 1.0


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
    """Feeds the outcomes other workers received to ``router``'s learner. Stops when the
    router is gone (reset or garbage) or :meth:`stop` is called."""

    def __init__(self, router, redis_url: str, token: str) -> None:
        super().__init__(name="moe-learning-follower", daemon=True)
        self._router = weakref.ref(router)
        self._url = redis_url
        self._token = token.encode()
        self._stop_event = threading.Event()
        self.applied = 0  # outcomes of other workers fed to the learner (tests, status)
        self.ready = threading.Event()  # set once the stream position is known

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(
            self._url, socket_timeout=BLOCK_MS / 1000 + 2.0, socket_connect_timeout=0.5
        )
        last: bytes | None = None
        try:
            while not self._stop_event.is_set():
                try:
                    if last is None:
                        newest = client.xrevrange(LEARN_KEY, count=1)
                        last = newest[0][0] if newest else b"0-0"
                        self.ready.set()
                    entries = client.xread({LEARN_KEY: last}, count=READ_COUNT, block=BLOCK_MS)
                except redis.RedisError as exc:
                    logger.debug("shared learning: Redis unavailable (%s); retrying", exc)
                    self._stop_event.wait(RETRY_S)
                    continue
                router = self._router()
                if router is None:
                    return
                for _stream, items in entries or ():
                    last = self._apply(router.engine.learner, items) or last
                del router
        finally:
            client.close()

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
