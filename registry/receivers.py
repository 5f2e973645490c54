"""Bump the registry version whenever a service or capability row changes.

Model signals catch every save, delete and capabilities change wherever it comes from (API,
admin, shell). ``QuerySet.update()`` and ``bulk_create()`` send no signals: write those through
functions in ``registry/services.py`` (e.g. :func:`~registry.services.set_status`), which bump
the version themselves.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from registry.models import Capability, Service
from registry.services import bump_registry_version


@receiver(post_save, sender=Service, dispatch_uid="registry_bump_on_service_save")
@receiver(post_save, sender=Capability, dispatch_uid="registry_bump_on_capability_save")
@receiver(post_delete, sender=Service, dispatch_uid="registry_bump_on_service_delete")
@receiver(post_delete, sender=Capability, dispatch_uid="registry_bump_on_capability_delete")
def bump_on_row_change(sender, raw=False, **kwargs) -> None:
    if not raw:  # loaddata: fixtures are not live changes
        bump_registry_version()


@receiver(
    m2m_changed, sender=Service.capabilities.through, dispatch_uid="registry_bump_on_caps_change"
)
def bump_on_capabilities_change(sender, action, pk_set, **kwargs) -> None:
    # post_add with an empty pk_set means nothing was actually added.
    if action == "post_clear" or (action in ("post_add", "post_remove") and pk_set):
        bump_registry_version()
