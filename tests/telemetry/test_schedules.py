"""The default beat schedules exist after migrate and stay as an operator edits them."""

import pytest
from django_celery_beat.models import PeriodicTask

from routing.schedules import DEFAULT_SCHEDULES, ensure_default_schedules

pytestmark = pytest.mark.django_db


def test_every_job_has_a_schedule_after_migrate():
    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))

    for _, task, seconds in DEFAULT_SCHEDULES:
        assert tasks[task] == seconds


def test_an_edited_schedule_is_not_reset():
    PeriodicTask.objects.filter(task="telemetry.rebalance").update(enabled=False)

    assert ensure_default_schedules() == 0
    assert not PeriodicTask.objects.get(task="telemetry.rebalance").enabled


def test_every_scheduled_task_is_registered_with_celery():
    from moe_project.celery import app

    app.loader.import_default_modules()
    for _, task, _ in DEFAULT_SCHEDULES:
        assert task in app.tasks
