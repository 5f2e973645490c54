"""The default Celery beat schedules, stored with django-celery-beat (editable in admin).

``ensure_default_schedules`` creates each missing periodic task and leaves existing ones as an
operator edited them; the data migration and ``seed_demo_fleet`` both call it.
"""

# (name, task, every seconds). Costs: a flush is one bulk INSERT per 500 rows; a probe is one
# HTTP GET per service with a 2 s timeout; a rebalance reads live state and writes changed
# weights; a retraining takes a few CPU-seconds per 10k examples.
DEFAULT_SCHEDULES = (
    ("moe: flush routing history", "routing.flush_history", 5),
    ("moe: probe service health", "telemetry.probe_health", 15),
    ("moe: rebalance weights", "telemetry.rebalance", 60),
    ("moe: retrain gate", "routing.retrain_gate", 3600),
    ("moe: prune routing history", "routing.prune_history", 3600),
)


def ensure_default_schedules(interval_model=None, task_model=None) -> int:
    """Create the missing default periodic tasks; returns how many were created."""
    if interval_model is None or task_model is None:
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        interval_model, task_model = IntervalSchedule, PeriodicTask
    created = 0
    for name, task, seconds in DEFAULT_SCHEDULES:
        if task_model.objects.filter(name=name).exists():
            continue
        every, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.create(name=name, task=task, interval=every, enabled=True)
        created += 1
    return created
