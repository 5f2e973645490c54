"""moe-router Django project. The Celery app is loaded with Django so tasks can be sent."""

from moe_project.celery import app as celery_app

__all__ = ("celery_app",)
