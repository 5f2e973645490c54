"""Domain events of the registry, sent after the transaction that caused them commits.

- ``service_registered(sender, service, created)``: a service was created or changed through
  :func:`registry.services.register_service` (or saved in admin), or its status changed
  through :func:`registry.services.set_status` (drain, enable, disable: ``created`` False).
- ``service_removed(sender, service_id)``: a service was removed.
- ``registry_changed(sender, version)``: the registry version went up to ``version``.

The sender is always the ``Service`` model (``RegistryVersion`` for ``registry_changed``).
Receivers run after commit, outside the transaction, so they see committed rows; an exception
in a receiver propagates to the code that committed, so receivers should not raise.
"""

from django.dispatch import Signal

service_registered = Signal()
service_removed = Signal()
registry_changed = Signal()
