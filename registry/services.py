"""Domain operations on the registry; the API, admin and commands all call these.

Each runs in ``transaction.atomic()``, bumps the registry version when it changes something
(model saves and deletes bump through ``registry/receivers.py``; bulk updates bump here) and
sends the signals of ``registry/signals.py`` once the transaction commits.
"""

from collections.abc import Iterable
from functools import partial

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from registry import constants
from registry.choices import ServiceStatus
from registry.models import Capability, RegistryVersion, Service
from registry.signals import registry_changed, service_registered, service_removed
from registry.validators import validate_capability_name

# Fields of a register payload copied onto the model; omitted optional ones keep their value
# on an update (so re-registering after a restart does not undo an operator's weight).
REGISTER_FIELDS = (
    "service_type",
    "endpoint",
    "max_capacity",
    "weight",
    "weight_pinned",
    "health_path",
    "metadata",
)


def bump_registry_version() -> int:
    """Increment the registry version (atomically, in the database) and return the new value.

    ``registry_changed`` is sent with the new version once the surrounding transaction commits.
    """
    singleton = RegistryVersion.objects.filter(pk=RegistryVersion.SINGLETON_ID)
    with transaction.atomic():
        increment = {"counter": F("counter") + 1, "updated_at": timezone.now()}
        if not singleton.update(**increment):
            # First change ever (or the table was flushed): create the row, race-safely.
            RegistryVersion.objects.get_or_create(pk=RegistryVersion.SINGLETON_ID)
            singleton.update(**increment)
        version = singleton.values_list("counter", flat=True).get()
        transaction.on_commit(
            partial(registry_changed.send, sender=RegistryVersion, version=version)
        )
    return version


def current_registry_version() -> int:
    """The committed registry version (0 before the first change)."""
    version = (
        RegistryVersion.objects.filter(pk=RegistryVersion.SINGLETON_ID)
        .values_list("counter", flat=True)
        .first()
    )
    return version or 0


def register_service(payload: dict) -> tuple[Service, bool]:
    """Create the service ``payload["service_id"]``, or update it when it exists.

    ``payload`` holds the register body (``service_id``, ``service_type``, ``endpoint``,
    ``capabilities``, ``max_capacity``; optional ``weight``, ``weight_pinned``, ``health_path``,
    ``metadata``).
    Capabilities are created by name as needed. Status and health are not touched. Nothing is
    written (and the version does not move) when the payload matches what is stored.
    Returns ``(service, created)``; raises ``ValidationError`` for an invalid payload.
    """
    try:
        return _register(payload)
    except IntegrityError:
        # Another request created the same id between our read and our insert: update it.
        return _register(payload)


@transaction.atomic
def _register(payload: dict) -> tuple[Service, bool]:
    service_id = payload["service_id"]
    service = Service.objects.select_for_update().filter(service_id=service_id).first()
    created = service is None
    if created:
        service = Service(service_id=service_id)
    changed = [f for f in REGISTER_FIELDS if f in payload and getattr(service, f) != payload[f]]
    for field in changed:
        setattr(service, field, payload[field])

    wanted = _capability_names(payload.get("capabilities"))
    current = set() if created else set(service.capabilities.values_list("name", flat=True))
    capabilities_changed = wanted is not None and wanted != current

    if created or changed or capabilities_changed:
        service.full_clean(validate_unique=False, validate_constraints=False)
        service.save()
    if capabilities_changed:
        service.capabilities.set(_capabilities_named(wanted))
    if created or changed or capabilities_changed:
        notify_service_registered(service, created)
    return service, created


def _capability_names(names: Iterable[str] | None) -> set[str] | None:
    if names is None:
        return None
    names = set(names)
    errors = []
    if len(names) > constants.MAX_CAPABILITIES_PER_SERVICE:
        errors.append(f"At most {constants.MAX_CAPABILITIES_PER_SERVICE} capabilities.")
    for name in sorted(names, key=str):
        try:
            validate_capability_name(name)
        except ValidationError as exc:
            errors.extend(f"{name!r}: {message}" for message in exc.messages)
    if errors:
        raise ValidationError({"capabilities": errors})
    return names


def _capabilities_named(names: set[str]) -> list[Capability]:
    found = {c.name: c for c in Capability.objects.filter(name__in=names)}
    for name in names - found.keys():
        found[name], _ = Capability.objects.get_or_create(name=name)
    return list(found.values())


def notify_service_registered(service: Service, created: bool) -> None:
    """Send ``service_registered`` after commit (for saves that bypass register_service)."""
    transaction.on_commit(
        partial(service_registered.send, sender=Service, service=service, created=created)
    )


@transaction.atomic
def remove_service(service_id: str) -> None:
    """Delete a service; raises ``Service.DoesNotExist`` when the id is unknown."""
    service = Service.objects.select_for_update().get(service_id=service_id)
    service.delete()
    transaction.on_commit(partial(service_removed.send, sender=Service, service_id=service_id))


def set_status(services: QuerySet | Iterable[str], status: str) -> int:
    """Drain, enable or disable services (a ``Service`` queryset or service ids).

    Only rows whose status differs are written; returns how many changed. Bumps the version
    once when anything changed and sends ``service_registered`` (``created=False``) for each
    changed service after commit, as a save would (``QuerySet.update`` sends no model signals).
    """
    if status not in ServiceStatus.values:
        raise ValueError(f"Unknown status {status!r}; expected one of {ServiceStatus.values}")
    if isinstance(services, QuerySet):
        # Materialise the keys: an admin queryset may carry distinct() and ordering.
        targets = Service.objects.filter(pk__in=list(services.values_list("pk", flat=True)))
    else:
        ids = [services] if isinstance(services, str) else list(services)
        targets = Service.objects.filter(service_id__in=ids)
    with transaction.atomic():
        # Locked, so the rows announced are exactly the rows this update changes.
        changing = list(targets.exclude(status=status).select_for_update())
        if not changing:
            return 0
        now = timezone.now()
        Service.objects.filter(pk__in=[s.pk for s in changing]).update(
            status=status, updated_at=now
        )
        bump_registry_version()
        for service in changing:
            service.status, service.updated_at = status, now
            notify_service_registered(service, created=False)
    return len(changing)
