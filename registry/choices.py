"""Choices for registry fields.

``ServiceStatus`` and ``ServiceHealth`` use the same strings as ``routing.core.types``
(``ServiceStatus`` and ``Health``); a test keeps them in step. They are not imported from the
core here so that loading the models never imports the routing core package.
"""

from django.db import models


class ServiceType(models.TextChoices):
    INFERENCE = "inference", "Inference"
    STORAGE = "storage", "Storage"
    CONSENSUS = "consensus", "Consensus"
    ANALYSIS = "analysis", "Analysis"
    NEUROMORPHIC = "neuromorphic", "Neuromorphic"
    LEARNING = "learning", "Learning"
    CUSTOM = "custom", "Custom"


class ServiceStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DRAINING = "draining", "Draining"
    DISABLED = "disabled", "Disabled"


class ServiceHealth(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    UNHEALTHY = "unhealthy", "Unhealthy"
    UNKNOWN = "unknown", "Unknown"
