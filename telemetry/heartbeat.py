"""Job heartbeats: what /api/v1/health and the job status answers know about the Celery workers.

* Every job that runs stamps the time it ended (``JOB_RAN``, Celery's ``task_postrun``
  signal, whatever the job and its outcome), and the flush job stamps its own name too.
* A job being queued sets a *waiting* mark (the time, only if none is set) and a worker taking
  any job from the queue (``task_received``, in the worker) clears it. A mark that stays means
  no worker has taken a job since it was set: none is consuming the queue, or all are busy.
  The API sets it before queuing a job (so a worker cannot take the job before the mark is
  set); beat, when it starts, connects ``before_task_publish`` so its periodic jobs set it too.
  The mark is never compared with a worker's clock: web, beat and workers may be on machines
  whose clocks differ by more than the milliseconds a pickup takes.

With Redis the stamps are shared keys; otherwise files under ``var/``, which the web process,
beat and the worker on this machine all read.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from pathlib import Path

from celery import signals
from django.conf import settings

logger = logging.getLogger(__name__)
KEY = "moe:heartbeat:"
JOB_RAN = "job"
WAITING = "queue_waiting"
# A job queued this long ago that no worker has taken is "not picked up" (settings can lower it:
# MOE_JOB_PICKUP_SECONDS). Beat queues the flush job every 5 s; a worker idles at most one
# broker poll (1 s on the filesystem broker) before taking it.
DEFAULT_JOB_PICKUP_SECONDS = 60.0


def pickup_seconds() -> float:
    return float(getattr(settings, "MOE_JOB_PICKUP_SECONDS", DEFAULT_JOB_PICKUP_SECONDS))


def _path(name: str) -> Path:
    return Path(settings.VAR_DIR) / f"heartbeat-{name}"


@functools.lru_cache(maxsize=4)
def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis():
    return _client(settings.REDIS_URL)


def _write(path: Path, value: float, exclusive: bool = False) -> bool:
    """Write ``value`` to ``path`` atomically (a reader never sees half a file); with
    ``exclusive`` only when the file does not exist. Whether it was written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(repr(value))
    try:
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def beat(name: str) -> None:
    now = time.time()
    if settings.REDIS_URL:
        import redis

        try:
            _redis().set(KEY + name, now, ex=24 * 3600)
            return
        except redis.RedisError:
            pass
    _write(_path(name), now)


def last_beats(names) -> dict[str, float | None]:
    """``{name: when it last beat, or None}`` for several names in one read."""
    names = list(names)
    found: dict[str, float | None] = dict.fromkeys(names)
    if settings.REDIS_URL:
        import redis

        try:
            for name, value in zip(names, _redis().mget([KEY + n for n in names]), strict=True):
                if value is not None:
                    found[name] = float(value)
        except redis.RedisError:
            pass
    for name in names:
        if found[name] is None:  # written to a file while Redis was away, or no Redis
            found[name] = _read(_path(name))
    return found


def last_beat(name: str) -> float | None:
    return last_beats([name])[name]


def mark_waiting() -> bool:
    """A job is about to be queued: set the waiting mark unless one is set. Whether it was."""
    now = time.time()
    if settings.REDIS_URL:
        import redis

        try:
            return bool(_redis().set(KEY + WAITING, now, nx=True, ex=24 * 3600))
        except redis.RedisError:
            pass
    return _write(_path(WAITING), now, exclusive=True)


def clear_waiting() -> None:
    """A worker took a job from the queue (or the job a mark was set for was never queued)."""
    if settings.REDIS_URL:
        import redis

        with contextlib.suppress(redis.RedisError):
            _redis().delete(KEY + WAITING)
    with contextlib.suppress(FileNotFoundError):
        _path(WAITING).unlink()


def waiting_since() -> float | None:
    """When the oldest job no worker has taken since was queued, if there is one."""
    return last_beat(WAITING)


# -- Celery signals (this module is imported by every process that loads the tasks) -------------


def _quietly(stamp, *args) -> None:
    """A heartbeat must never fail a job, its pickup or its publication."""
    try:
        stamp(*args)
    except Exception:  # var/ not writable and Redis away: health will not see this job
        logger.warning("heartbeat: %s failed", stamp.__name__, exc_info=True)


@signals.task_postrun.connect(dispatch_uid="moe-heartbeat-job-ran", weak=False)
def _job_ran(**kwargs) -> None:
    _quietly(beat, JOB_RAN)


@signals.task_received.connect(dispatch_uid="moe-heartbeat-job-received", weak=False)
def _job_received(**kwargs) -> None:
    _quietly(clear_waiting)


def _job_published(**kwargs) -> None:
    _quietly(mark_waiting)


@signals.beat_init.connect(dispatch_uid="moe-heartbeat-beat-init", weak=False)
def _beat_started(**kwargs) -> None:
    """In beat only: its periodic jobs set the waiting mark when queued (the API sets it itself,
    and other publishers, such as a shell or a test's client, leave it alone)."""
    signals.before_task_publish.connect(
        _job_published, dispatch_uid="moe-heartbeat-job-published", weak=False
    )
