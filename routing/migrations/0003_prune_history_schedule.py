"""Data migration: add the history-pruning schedule to databases migrated before it existed."""

from django.db import migrations

from routing.schedules import ensure_default_schedules


def create(apps, schema_editor):
    ensure_default_schedules(
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "PeriodicTask"),
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="moe: prune routing history"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_default_schedules")]

    operations = [migrations.RunPython(create, remove)]
