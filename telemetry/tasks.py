"""Celery tasks of the telemetry app: thin wrappers around telemetry.services."""

from celery import shared_task

from telemetry import services


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
