"""The service registry: services ("experts"), their capabilities, and the registry version.

Every change to a service or a capability bumps :class:`RegistryVersion` (see
``registry/receivers.py`` and ``registry/services.py``); routing workers compare it with the
version of their cached fleet snapshot to know when to rebuild it.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry import constants
from registry.choices import ServiceHealth, ServiceStatus, ServiceType
from registry.validators import (
    validate_capability_name,
    validate_endpoint,
    validate_health_path,
    validate_metadata,
    validate_service_id,
    validate_weight,
)


def empty_metadata() -> dict:
    """Default for Service.metadata (referenced by migrations; keep the name)."""
    return {}


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Capability(TimestampedModel):
    """Something a service can do ("analysis", "embedding"); requests may require some."""

    name = models.CharField(
        max_length=constants.CAPABILITY_NAME_MAX_LENGTH,
        unique=True,
        validators=[validate_capability_name],
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "capabilities"

    def __str__(self) -> str:
        return self.name


class Service(TimestampedModel):
    """A registered service the router may send requests to (an "expert")."""

    service_id = models.CharField(
        max_length=constants.SERVICE_ID_MAX_LENGTH,
        unique=True,
        validators=[validate_service_id],
        help_text="Slug that identifies the service in routing decisions and the API.",
    )
    service_type = models.CharField(max_length=32, choices=ServiceType.choices)
    endpoint = models.CharField(
        max_length=constants.ENDPOINT_MAX_LENGTH,
        validators=[validate_endpoint],
        help_text="Base URL (http or https) on a host in MOE_ALLOWED_ENDPOINT_HOSTS.",
    )
    capabilities = models.ManyToManyField(Capability, blank=True, related_name="services")
    max_capacity = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(constants.MAX_CAPACITY_LIMIT)],
        help_text="Requests the service can handle at once.",
    )
    weight = models.FloatField(
        default=1.0,
        validators=[validate_weight],
        help_text="Relative share of traffic (greater than 0). The rebalance job moves it toward "
        "what the service's capacity and latency call for, unless the weight is pinned.",
    )
    weight_pinned = models.BooleanField(
        default=False,
        help_text="Keep the weight as set: the rebalance job leaves a pinned weight alone.",
    )
    status = models.CharField(
        max_length=16, choices=ServiceStatus.choices, default=ServiceStatus.ACTIVE
    )
    health = models.CharField(
        max_length=16, choices=ServiceHealth.choices, default=ServiceHealth.UNKNOWN
    )
    health_path = models.CharField(
        max_length=constants.HEALTH_PATH_MAX_LENGTH,
        default="/health",
        validators=[validate_health_path],
    )
    metadata = models.JSONField(default=empty_metadata, blank=True, validators=[validate_metadata])
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service_id"]
        permissions = [("operate_router", "Can operate the router")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_capacity__gte=1), name="registry_service_capacity_gte_1"
            ),
            models.CheckConstraint(
                condition=models.Q(weight__gt=0) & models.Q(weight__lte=constants.MAX_WEIGHT),
                name="registry_service_weight_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(service_type__in=ServiceType.values),
                name="registry_service_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ServiceStatus.values),
                name="registry_service_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(health__in=ServiceHealth.values),
                name="registry_service_health_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.service_id


class RegistryVersion(TimestampedModel):
    """A single row whose counter goes up on every registry change.

    Use :func:`registry.services.bump_registry_version` and
    :func:`registry.services.current_registry_version`; never write it directly.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    counter = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="registry_version_singleton")
        ]

    def __str__(self) -> str:
        return f"registry version {self.counter}"
