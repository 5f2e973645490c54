"""Celery jobs behind the API: queue one (202 with its id) and report its state, the same way
for every job endpoint (rebalance, retrain)."""

from __future__ import annotations

import re
import time
import uuid

from celery import states
from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import caches
from rest_framework import status
from rest_framework.response import Response

from moe_project.api_errors import APIError
from telemetry import heartbeat

TASK_ID_MAX_LENGTH = 64
TASK_ID_RE = re.compile(rf"[A-Za-z0-9-]{{1,{TASK_ID_MAX_LENGTH}}}")
# Celery answers PENDING for any id it has no result for, including one it never issued, so
# a client polling a mistyped id would wait for ever. Each queued job's id is remembered, with
# the time it was queued (in the shared cache: Redis when configured), for as long as its
# result is kept.
ISSUED_KEY = "moe:job:{name}:{task_id}"


def _issued_key(task, task_id: str) -> str:
    return ISSUED_KEY.format(name=task.name, task_id=task_id)


def _id_prefix(task) -> str:
    """What every id this endpoint issues starts with (``routing-retrain-gate-``): a finished
    job is answered only by the endpoint of its kind, even once the cache has forgotten it."""
    return re.sub(r"[^A-Za-z0-9]+", "-", task.name) + "-"


def issued_by_api(task, task_id: str) -> bool:
    """Whether ``task_id`` is the id of a job queued through the API (not by beat)."""
    return task_id.startswith(_id_prefix(task))


def queue_job(task, status_prefix: str, **kwargs) -> Response:
    """``task.apply_async(kwargs=kwargs)``: 202 with the task id and where to ask for its state;
    503 ``broker_unavailable`` when it cannot be queued (never a 500)."""
    task_id = f"{_id_prefix(task)}{uuid.uuid4()}"
    # Marked before queuing, so a worker cannot take the job before the mark is set; an eager
    # job (tests) never waits in a queue.
    marked = not task.app.conf.task_always_eager and heartbeat.mark_waiting()
    try:
        result = task.apply_async(kwargs=kwargs, task_id=task_id)
    except Exception as exc:  # broker unreachable: say so instead of a 500
        if marked:
            heartbeat.clear_waiting()
        raise APIError(
            "broker_unavailable", f"Could not queue the job: {type(exc).__name__}", None, 503
        ) from None
    caches["jobs"].set(
        _issued_key(task, result.id),
        time.time(),
        timeout=settings.CELERY_RESULT_EXPIRES.total_seconds(),
    )
    return Response(
        {"task_id": result.id, "state": "PENDING", "status_url": f"{status_prefix}/{result.id}"},
        status=status.HTTP_202_ACCEPTED,
    )


def _not_found() -> APIError:
    return APIError(
        "not_found",
        "No such job: task_id was not issued by this endpoint, or its result has expired.",
        {"task_id": ["No such job."]},
        404,
    )


def job_status(task, task_id: str) -> Response:
    """The job's state, its result once it succeeded, its error type once it failed; while
    PENDING, how long it has been queued and, past ``MOE_JOB_PICKUP_SECONDS`` with no worker
    having taken a job since, a ``detail`` saying so; while STARTED by a worker that has since
    been lost (not seen for ``MOE_WORKER_LOST_SECONDS``, or started again), ``worker_lost`` and
    a ``detail`` saying what to do. 400 naming ``task_id`` when that is not a task id, 404 when
    no such job was queued by this endpoint (or its result has expired)."""
    if not TASK_ID_RE.fullmatch(task_id):
        raise APIError(
            "validation_error",
            "Invalid input: task_id: not a task id.",
            {"task_id": ["Not a task id."]},
        )
    queued_at = caches["jobs"].get(_issued_key(task, task_id))
    # An id of another kind of job (or of one queued by beat) is unknown here in every state;
    # ids issued before they carried their kind are known by the cache alone.
    if queued_at is None and not task_id.startswith(_id_prefix(task)):
        raise _not_found()
    result = AsyncResult(task_id, app=task.app)
    state = result.state
    if state == states.PENDING and queued_at is None:
        raise _not_found()
    body = {"task_id": task_id, "state": state}
    if state == states.PENDING and isinstance(queued_at, float):
        body.update(_waiting(queued_at))
    elif state == states.STARTED:
        body.update(_started(task, task_id, result.info))
    elif result.successful():
        body["result"] = result.result
    elif result.failed():
        body["error"] = type(result.result).__name__
    return Response(body)


def _waiting(queued_at: float) -> dict:
    """How long a PENDING job has been queued, and whether any worker has picked up a job
    since: the waiting mark, set when this job or an earlier one was queued, is still there."""
    queued_for = max(0.0, time.time() - queued_at)
    answer: dict = {"queued_for_s": round(queued_for, 1)}
    if queued_for > heartbeat.pickup_seconds():
        waiting_since = heartbeat.waiting_since()
        if waiting_since is not None and waiting_since <= queued_at:
            answer["detail"] = (
                f"Not picked up: no Celery worker has taken a job from the queue since this one "
                f"was queued {queued_for:.0f} s ago. Is a worker running? Start one with "
                "`celery -A moe_project worker` (see /api/v1/health)."
            )
    return answer


def redelivery(app) -> tuple[float | None, str]:
    """When the broker hands out again a job whose worker was lost before acknowledging it
    (jobs are acknowledged late): ``(seconds after it was taken, or None for never, sentence)``.
    """
    scheme = (app.conf.broker_url or "").split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "sentinel", "redis+socket"):
        from kombu.transport.redis import Channel

        options = app.conf.broker_transport_options or {}
        timeout = float(options.get("visibility_timeout", Channel.visibility_timeout))
        return timeout, (
            f"The broker (Redis) hands it to a worker again only once its visibility timeout "
            f"({timeout:.0f} s) has passed since it was taken, and only while a worker runs."
        )
    if scheme == "filesystem":
        return None, (
            "The broker (the filesystem transport) removed it from the queue when the worker "
            "took it: it is never handed out again and this job will not finish."
        )
    return None, "Whether and when the broker hands it out again depends on the broker."


def _started(task, task_id: str, info) -> dict:
    """A STARTED job whose worker is lost: say so, and what to do."""
    hostname = info.get("hostname") if isinstance(info, dict) else None
    lost = heartbeat.job_worker_lost(task_id, hostname)
    if lost is None:
        return {}
    if lost.restarted:
        what = (
            f"The worker that started this job ({lost.node}) has been started again since "
            "(it was killed or crashed while running it): the job is not running."
        )
    elif lost.last_seen_s is None:
        what = (
            f"The worker that started this job ({lost.node}) has stopped (no trace of it is "
            "left): the job is not running."
        )
    else:
        what = (
            f"The worker that started this job ({lost.node}) has stopped: it was last seen "
            f"{lost.last_seen_s:.0f} s ago (killed, crashed or cut off; a live worker is seen "
            f"every {heartbeat.worker_beat_seconds():g} s), so the job is not running."
        )
    _, when = redelivery(task.app)
    return {
        "worker_lost": True,
        "worker": lost.node,
        "worker_last_seen_s": lost.last_seen_s,
        "detail": (
            f"{what} {when} Queuing it again now (POST to the endpoint that queued it) is "
            "safe: jobs are idempotent."
        ),
    }
