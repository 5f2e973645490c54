from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "telemetry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from registry import signals as registry_signals
        from telemetry import events

        # The registry sends these after commit; they become live-feed events.
        registry_signals.service_registered.connect(
            events.on_service_registered, dispatch_uid="telemetry_feed_service_registered"
        )
        registry_signals.service_removed.connect(
            events.on_service_removed, dispatch_uid="telemetry_feed_service_removed"
        )
