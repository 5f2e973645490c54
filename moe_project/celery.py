"""The Celery app: configuration from Django settings (CELERY_*), tasks from each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moe_project.settings")

app = Celery("moe_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker stamps that it is alive, so a job whose worker was killed says so
# (telemetry/heartbeat.py).
app.steps["worker"].add("telemetry.heartbeat:WorkerHeartbeat")
