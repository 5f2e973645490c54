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

* Every worker stamps that it is alive (``worker:<nodename>``, with a random id of this start
  of it) every ``MOE_WORKER_LOST_SECONDS`` / 6 seconds, from a thread of its main process (a
  bootstep, :class:`WorkerHeartbeat`: Celery's own ``worker-heartbeat`` events go out on a
  fanout exchange that only a running event consumer can read, and they stop while a solo
  pool runs a job). A job queued through the API (its id starts with its kind) is recorded
  in *running* while a worker runs it: which worker, and which start of it. A STARTED job
  whose worker has not stamped for ``MOE_WORKER_LOST_SECONDS``, or has started again since,
  is not running any more: its status and health say so (the broker hands it out again only
  after its visibility timeout, or never). Ages of worker stamps come from Redis's clock
  (the key's remaining TTL), never from comparing a worker's clock with the web's.

With Redis the stamps are shared keys; otherwise files under ``var/``, which the web process,
beat and the worker on this machine all read.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from celery import bootsteps, signals
from django.conf import settings

logger = logging.getLogger(__name__)
KEY = "moe:heartbeat:"
JOB_RAN = "job"
WAITING = "queue_waiting"
# A job queued this long ago that no worker has taken is "not picked up" (settings can lower it:
# MOE_JOB_PICKUP_SECONDS). Beat queues the flush job every 5 s; a worker idles at most one
# broker poll (1 s on the filesystem broker) before taking it.
DEFAULT_JOB_PICKUP_SECONDS = 60.0
WORKER = "worker:"
RUNNING = "running"
SUCCEEDED = "succeeded:"  # + a job's name: when it last ended in success
# A worker not seen for this long (settings: MOE_WORKER_LOST_SECONDS) is gone; it stamps six
# times as often, so a slow stamp or two (a busy machine, a Redis blip) is not a loss.
DEFAULT_WORKER_LOST_SECONDS = 30.0
BEATS_PER_THRESHOLD = 6
# A worker's stamp outlives it by a day, so a job's status can say how long ago it was seen.
WORKER_STAMP_TTL_MS = 24 * 3600 * 1000
# Running-job records read at most (health and a job's status read them; a worker removes its
# record when the job ends, so only jobs running or lost are there).
MAX_RUNNING_READ = 100


def pickup_seconds() -> float:
    return float(getattr(settings, "MOE_JOB_PICKUP_SECONDS", DEFAULT_JOB_PICKUP_SECONDS))


def worker_lost_seconds() -> float:
    return float(getattr(settings, "MOE_WORKER_LOST_SECONDS", DEFAULT_WORKER_LOST_SECONDS))


def worker_beat_seconds() -> float:
    return worker_lost_seconds() / BEATS_PER_THRESHOLD


def _path(name: str) -> Path:
    return Path(settings.VAR_DIR) / f"heartbeat-{name}"


def _worker_path(node: str) -> Path:
    return _path(WORKER.rstrip(":") + "-" + re.sub(r"[^A-Za-z0-9@._-]", "_", node))


def _running_dir() -> Path:
    return _path(RUNNING)


@functools.lru_cache(maxsize=4)
def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis():
    return _client(settings.REDIS_URL)


def _write(path: Path, value: float | str, exclusive: bool = False) -> bool:
    """Write ``value`` (a number, or text) to ``path`` atomically (a reader never sees half a
    file); with ``exclusive`` only when the file does not exist. Whether it was written."""
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    )
    tmp.write_text(value if isinstance(value, str) else repr(value))
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


# -- Workers' liveness and the jobs they run ------------------------------------------------------


def beat_worker(node: str, boot: str) -> None:
    """The worker ``node`` (its Celery nodename), started as ``boot``, is alive now."""
    # ``lost_after``: this worker's own MOE_WORKER_LOST_SECONDS. It stamps at a sixth of it,
    # so a reader configured with a shorter one would call it lost between two stamps.
    stamp = json.dumps(
        {"boot": boot, "pid": os.getpid(), "at": time.time(), "lost_after": worker_lost_seconds()}
    )
    if settings.REDIS_URL:
        _redis().set(KEY + WORKER + node, stamp, px=WORKER_STAMP_TTL_MS)
        return
    _write(_worker_path(node), stamp)


@dataclass(frozen=True, slots=True)
class Seen:
    """A worker's last stamp: which start of it, how many seconds ago, and after how long
    without a stamp that worker counts itself lost (None: a stamp that does not say)."""

    boot: str | None
    age_s: float
    lost_after: float | None = None


def workers_seen(nodes) -> dict[str, Seen | None] | None:
    """``{node: its last stamp, or None if there is none}``; None when the store cannot be
    read (Redis unreachable): nothing can be said then."""
    nodes = list(dict.fromkeys(nodes))
    found: dict[str, Seen | None] = dict.fromkeys(nodes)
    if not nodes:
        return found
    if settings.REDIS_URL:
        import redis

        try:
            pipe = _redis().pipeline(transaction=False)
            for node in nodes:
                pipe.get(KEY + WORKER + node)
                pipe.pttl(KEY + WORKER + node)
            answers = pipe.execute()
        except redis.RedisError:
            return None
        for node, raw, ttl in zip(nodes, answers[::2], answers[1::2], strict=True):
            if raw is not None and ttl is not None and ttl >= 0:
                # Redis's clock: how long ago the key was set, from what is left of its TTL.
                age_s = max(0.0, (WORKER_STAMP_TTL_MS - ttl) / 1000)
                found[node] = _seen(_stamp(raw), age_s)
        return found
    now = time.time()
    for node in nodes:
        try:
            stamp = _stamp(_worker_path(node).read_text())
            found[node] = _seen(stamp, max(0.0, now - float(stamp["at"])))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return found


def _stamp(raw) -> dict:
    """A worker's stamp as written by :func:`beat_worker` ({} if it is not one)."""
    try:
        stamp = json.loads(raw)
    except ValueError:
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _seen(stamp: dict, age_s: float) -> Seen:
    lost_after = stamp.get("lost_after")
    usable = (
        isinstance(lost_after, (int, float))
        and not isinstance(lost_after, bool)
        and math.isfinite(lost_after)
        and lost_after > 0
    )
    return Seen(stamp.get("boot"), age_s, float(lost_after) if usable else None)


def job_started(task_id: str, task_name: str, node: str, boot: str) -> None:
    """A worker (``node``, started as ``boot``) runs the job ``task_id`` from now on."""
    record = json.dumps(
        {"task": task_name, "node": node, "boot": boot, "pid": os.getpid(), "started": time.time()}
    )
    if settings.REDIS_URL:
        _redis().hset(KEY + RUNNING, task_id, record)
        return
    _running_dir().mkdir(parents=True, exist_ok=True)
    _write(_running_dir() / f"{task_id}.json", record)


def job_ended(task_id: str) -> None:
    forget_jobs([task_id])


def forget_jobs(task_ids) -> None:
    task_ids = list(task_ids)
    if not task_ids:
        return
    if settings.REDIS_URL:
        _redis().hdel(KEY + RUNNING, *task_ids)
        return
    for task_id in task_ids:
        with contextlib.suppress(FileNotFoundError):
            (_running_dir() / f"{task_id}.json").unlink()


def _record(raw) -> dict | None:
    try:
        record = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("node"), str):
        return None
    return record


def running_job(task_id: str) -> dict | None:
    """The record of a job a worker runs (or ran until it was lost), if there is one."""
    if settings.REDIS_URL:
        import redis

        try:
            raw = _redis().hget(KEY + RUNNING, task_id)
        except redis.RedisError:
            return None
        return _record(raw) if raw is not None else None
    try:
        return _record((_running_dir() / f"{task_id}.json").read_text())
    except OSError:
        return None


def running_jobs(limit: int = MAX_RUNNING_READ) -> dict[str, dict]:
    """Up to ``limit`` records of jobs running or lost: ``{task_id: record}``."""
    found: dict[str, dict] = {}
    if settings.REDIS_URL:
        import redis

        try:
            pairs = list(itertools.islice(_redis().hscan_iter(KEY + RUNNING, count=limit), limit))
        except redis.RedisError:
            return found
        for task_id, raw in pairs:
            record = _record(raw)
            if record is not None:
                found[task_id.decode() if isinstance(task_id, bytes) else task_id] = record
        return found
    try:
        entries = list(itertools.islice(os.scandir(_running_dir()), limit))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.endswith(".json"):
            continue
        try:
            record = _record(Path(entry.path).read_text())
        except OSError:
            continue
        if record is not None:
            found[entry.name.removesuffix(".json")] = record
    return found


@dataclass(frozen=True, slots=True)
class LostWorker:
    """The worker that started a job and no longer runs it."""

    node: str
    last_seen_s: float | None  # None: no stamp of it is left
    restarted: bool  # it stamps again, but as a later start of it (killed and restarted)


def lost_worker(node: str, boot: str | None, seen: dict[str, Seen | None]) -> LostWorker | None:
    """Whether the worker ``node`` (as started ``boot``, when known) is lost, given ``seen``
    (:func:`workers_seen`). A worker never seen and no record of the job: nothing is said (a
    worker of a version that does not stamp)."""
    stamp = seen.get(node)
    if stamp is None:
        return LostWorker(node, None, False) if boot else None
    # The longer of this process's threshold and the worker's own: a worker configured to
    # stamp less often is not lost between two of its stamps.
    if stamp.age_s > max(worker_lost_seconds(), stamp.lost_after or 0.0):
        return LostWorker(node, round(stamp.age_s, 1), False)
    if boot and stamp.boot and stamp.boot != boot:
        return LostWorker(node, round(stamp.age_s, 1), True)
    return None


def job_worker_lost(task_id: str, hostname: str | None) -> LostWorker | None:
    """For a STARTED job (``hostname``: the worker its result names), the worker that started
    it if it is lost; None while it runs it, or when that cannot be told."""
    record = running_job(task_id)
    node, boot = hostname, None
    if record is not None and (not hostname or record["node"] == hostname):
        node, boot = record["node"], record.get("boot")
    if not node:
        return None
    seen = workers_seen([node])
    return None if seen is None else lost_worker(node, boot, seen)


def lost_jobs(report_for_s: float, forget_after_s: float) -> list[tuple[str, dict, LostWorker]]:
    """Jobs (``(task_id, record, lost)``) whose worker was lost, started less than
    ``report_for_s`` ago and not followed by a success of the same job; records older than
    ``forget_after_s`` (their result has expired) are removed. Bounded: at most
    MAX_RUNNING_READ records, one read of the workers they name and one of those successes."""
    records = running_jobs()
    if not records:
        return []
    now = time.time()

    def started(record: dict) -> float:
        try:
            return float(record.get("started", now))
        except (TypeError, ValueError):
            return now

    def age(record: dict) -> float:
        return now - started(record)

    expired = [task_id for task_id, record in records.items() if age(record) > forget_after_s]
    if expired:
        _quietly(forget_jobs, expired)
    recent = {t: r for t, r in records.items() if age(r) <= report_for_s}
    seen = workers_seen(r["node"] for r in recent.values())
    if not seen:
        return []
    succeeded = last_beats({SUCCEEDED + str(r.get("task")) for r in recent.values()})
    found = []
    for task_id, record in sorted(recent.items(), key=lambda item: age(item[1]), reverse=True):
        lost = lost_worker(record["node"], record.get("boot"), seen)
        if lost is None:
            continue
        since = succeeded.get(SUCCEEDED + str(record.get("task")))
        if since is not None and since > started(record):
            continue  # the same job has succeeded since this one started: done anyway
        found.append((task_id, record, lost))
    return found


# The worker this process belongs to, ``(nodename, boot id)``: set in the worker's main process
# when its blueprint is applied, before the pool's processes are forked (they inherit it).
_this_worker: tuple[str, str] | None = None


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep (moe_project/celery.py adds it): stamps ``worker:<nodename>`` before the
    worker consumes any job, then every ``MOE_WORKER_LOST_SECONDS`` / 6 seconds from a daemon
    thread of the main process, which no job blocks (a solo pool runs jobs in the main thread;
    a prefork pool in child processes: a child killed alone is noticed by the main process,
    which hands its job back to the broker)."""

    label = "moe heartbeat"

    def __init__(self, worker, **kwargs):
        global _this_worker
        self.node = worker.hostname
        self.boot = uuid.uuid4().hex
        _this_worker = (self.node, self.boot)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        super().__init__(worker, **kwargs)

    def _beat(self) -> None:
        try:
            beat_worker(self.node, self.boot)
        except Exception:  # Redis away, var/ not writable: say so once, keep trying
            if not self._failing:
                logger.warning("heartbeat: worker %s could not stamp", self.node, exc_info=True)
            self._failing = True
        else:
            if self._failing:
                logger.info("heartbeat: worker %s stamps again", self.node)
            self._failing = False

    def _run(self) -> None:
        while not self._stopped.wait(worker_beat_seconds()):
            self._beat()

    def start(self, worker) -> None:
        self._beat()
        self._thread = threading.Thread(target=self._run, name="moe-worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, worker) -> None:
        self._stopped.set()

    terminate = stop


# -- Celery signals (this module is imported by every process that loads the tasks) -------------


def _quietly(stamp, *args) -> None:
    """A heartbeat must never fail a job, its pickup or its publication."""
    try:
        stamp(*args)
    except Exception:  # var/ not writable and Redis away: health will not see this job
        logger.warning("heartbeat: %s failed", stamp.__name__, exc_info=True)


@signals.task_postrun.connect(dispatch_uid="moe-heartbeat-job-ran", weak=False)
def _job_ran(task_id=None, task=None, state=None, **kwargs) -> None:
    _quietly(beat, JOB_RAN)
    if state == "SUCCESS" and task is not None:
        # A later success of the same job (re-queued, or its periodic run) makes one lost
        # before it nothing to act on: every job here is idempotent (moe_project/jobs.py).
        _quietly(beat, SUCCEEDED + task.name)
    if _recorded(task_id, task):
        _quietly(job_ended, task_id)


def _recorded(task_id, task) -> bool:
    """Whether the job is one a running record is kept for: run by a worker (not eagerly),
    queued through the API (its id starts with its kind)."""
    if _this_worker is None or not task_id or task is None:
        return False
    from moe_project.jobs import issued_by_api

    return issued_by_api(task, task_id)


@signals.task_prerun.connect(dispatch_uid="moe-heartbeat-job-started", weak=False)
def _job_started(task_id=None, task=None, **kwargs) -> None:
    """In the process that runs the job, before Celery stores its STARTED state."""
    if _recorded(task_id, task):
        _quietly(job_started, task_id, task.name, *_this_worker)


@signals.task_revoked.connect(dispatch_uid="moe-heartbeat-job-revoked", weak=False)
def _job_revoked(request=None, **kwargs) -> None:
    """A revoked (possibly terminated) job runs no more; its worker lives on."""
    task_id = getattr(request, "id", None)
    if task_id and _this_worker is not None:
        _quietly(job_ended, task_id)


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
