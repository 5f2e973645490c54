from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Service registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        from registry import receivers  # noqa: F401  (connects the version-bump receivers)
        from registry.admin_access import admit_operators

        # The admin site and its login admit operators (permissions: settings'
        # AUTHENTICATION_BACKENDS, registry.admin_access.OperatorPermissionBackend).
        admit_operators(admin.site)
