"""Choices for the routing models."""

from django.db import models


class OverrideScope(models.TextChoices):
    GLOBAL = "global", "Global"
    REQUEST_TYPE = "request_type", "Request type"
