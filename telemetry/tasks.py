"""Celery tasks of the telemetry app: thin wrappers around telemetry.services.

Importing this module (every worker and beat does, through ``autodiscover_tasks``) also
connects the job heartbeats' Celery signals (see :mod:`telemetry.heartbeat`)."""

from celery import shared_task

from telemetry import (
    heartbeat,  # noqa: F401 - connects the job heartbeats' signals
    services,
)


@shared_task(
    name="telemetry.rebalance",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
)
def rebalance() -> dict:
    return services.rebalance_weights()


@shared_task(
    name="telemetry.probe_health",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=2,
    # A probe run older than its own period is useless; let the next one do the work.
    expires=60,
)
def probe_health() -> dict:
    return services.probe_health()
