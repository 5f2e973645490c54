"""The one adapter from registry models to the routing core's :class:`FleetSnapshot`."""

from django.db.models import Prefetch

from registry.models import Capability, Service
from registry.services import current_registry_version
from routing.core.types import FleetSnapshot, Health, ServiceSpec, ServiceStatus


def build_fleet_snapshot() -> FleetSnapshot:
    """Read the whole registry (services + capabilities) into an immutable snapshot.

    The version is read *before* the rows: a change committed in between yields newer rows
    under an older version, which only causes one extra rebuild later. The other order could
    label old rows with the new version and keep them cached until the next change.
    """
    version = current_registry_version()
    services = Service.objects.only(
        "service_id", "service_type", "endpoint", "max_capacity", "weight", "status", "health"
    ).prefetch_related(Prefetch("capabilities", queryset=Capability.objects.only("name")))
    specs = [
        ServiceSpec(
            service_id=service.service_id,
            service_type=service.service_type,
            endpoint=service.endpoint,
            capabilities=frozenset(c.name for c in service.capabilities.all()),
            max_capacity=service.max_capacity,
            weight=service.weight,
            status=ServiceStatus(service.status),
            health=Health(service.health),
        )
        for service in services
    ]
    return FleetSnapshot.build(specs, version=version)
