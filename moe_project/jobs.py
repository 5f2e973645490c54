"""Celery jobs behind the API: queue one (202 with its id) and report its state, the same way
for every job endpoint (rebalance, retrain)."""

from __future__ import annotations

import re

from celery import states
from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import cache
from rest_framework import status
from rest_framework.response import Response

from moe_project.api_errors import APIError

TASK_ID_MAX_LENGTH = 64
TASK_ID_RE = re.compile(rf"[A-Za-z0-9-]{{1,{TASK_ID_MAX_LENGTH}}}")
# Celery answers PENDING for any id it has no result for, including one it never issued, so
# a client polling a mistyped id would wait for ever. Each queued job's id is remembered (in
# the shared cache: Redis when configured) for as long as its result is kept.
ISSUED_KEY = "moe:job:{name}:{task_id}"


def _issued_key(task, task_id: str) -> str:
    return ISSUED_KEY.format(name=task.name, task_id=task_id)


def queue_job(task, status_prefix: str, **kwargs) -> Response:
    """``task.delay(**kwargs)``: 202 with the task id and where to ask for its state; 503
    ``broker_unavailable`` when it cannot be queued (never a 500)."""
    try:
        result = task.delay(**kwargs)
    except Exception as exc:  # broker unreachable: say so instead of a 500
        raise APIError(
            "broker_unavailable", f"Could not queue the job: {type(exc).__name__}", None, 503
        ) from None
    cache.set(
        _issued_key(task, result.id), 1, timeout=settings.CELERY_RESULT_EXPIRES.total_seconds()
    )
    return Response(
        {"task_id": result.id, "state": "PENDING", "status_url": f"{status_prefix}/{result.id}"},
        status=status.HTTP_202_ACCEPTED,
    )


def job_status(task, task_id: str) -> Response:
    """The job's state, its result once it succeeded, its error type once it failed; 400
    naming ``task_id`` when that is not a task id, 404 when no such job was queued here (or
    its result has expired)."""
    if not TASK_ID_RE.fullmatch(task_id):
        raise APIError(
            "validation_error",
            "Invalid input: task_id: not a task id.",
            {"task_id": ["Not a task id."]},
        )
    result = AsyncResult(task_id, app=task.app)
    state = result.state
    if state == states.PENDING and cache.get(_issued_key(task, task_id)) is None:
        raise APIError(
            "not_found",
            "No such job: task_id was not issued by this endpoint, or its result has expired.",
            {"task_id": ["No such job."]},
            404,
        )
    body = {"task_id": task_id, "state": state}
    if result.successful():
        body["result"] = result.result
    elif result.failed():
        body["error"] = type(result.result).__name__
    return Response(body)
