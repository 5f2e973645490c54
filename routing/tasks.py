"""Celery tasks of the routing app: thin wrappers around routing's service functions."""

from celery import shared_task


@shared_task(
    name="routing.flush_history",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def flush_history() -> dict:
    from routing.history import flush_history as flush
    from telemetry.heartbeat import beat

    result = flush().as_dict()
    beat("flush_history")
    return result


@shared_task(
    name="routing.retrain_gate",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=2,
    # Training is CPU-bound; one at a time, and never two of them racing to activate.
    rate_limit="6/m",
)
def retrain_gate(max_examples: int | None = None) -> dict:
    from routing.training import retrain_gate as retrain

    return retrain(max_examples=max_examples)


@shared_task(
    name="routing.prune_history", acks_late=True, autoretry_for=(Exception,), max_retries=2
)
def prune_history() -> dict:
    from routing.history import prune_history as prune

    return {"deleted": prune()}
