from django.apps import AppConfig


def _registry_changed(sender, version, **kwargs):
    """A change committed in this process: the router re-reads the registry at once."""
    from routing import runtime

    if runtime._router is not None:
        runtime._router.mark_stale()


class RoutingConfig(AppConfig):
    name = "routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from registry.signals import registry_changed

        registry_changed.connect(_registry_changed, dispatch_uid="routing.registry_changed")
