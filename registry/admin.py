"""Django admin for the registry: what an operator uses to inspect and steer the fleet.

Saves and deletes go through the model (which validates the endpoint with the same validator
as the API and bumps the registry version); bulk status changes go through
:func:`registry.services.set_status` so they bump it too and reach the live feed. Who may use
the admin (operators, see ``registry/admin_access.py``) is the same rule as in the API.
"""

from contextlib import suppress

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count
from django.utils.translation import ngettext

from registry import services
from registry.choices import ServiceStatus
from registry.models import Capability, Service
from registry.permissions import is_operator

# One admin for the whole product (routing and Celery schedules register on the same site).
admin.site.site_header = "moe-router operations"
admin.site.site_title = "moe-router admin"
admin.site.index_title = "Fleet, routing and schedules"
admin.site.site_url = "/dashboard/"  # "View site" opens the live dashboard


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = (
        "service_id",
        "service_type",
        "endpoint",
        "status",
        "health",
        "max_capacity",
        "weight",
        "weight_pinned",
        "capability_names",
        "last_seen",
    )
    list_filter = ("service_type", "status", "health", "capabilities")
    search_fields = ("service_id", "endpoint", "capabilities__name")
    filter_horizontal = ("capabilities",)
    readonly_fields = ("health", "last_seen", "created_at", "updated_at")
    actions = ("drain_services", "enable_services", "disable_services")
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("service_id", "service_type", "endpoint", "capabilities")}),
        ("Routing", {"fields": ("status", "max_capacity", "weight", "weight_pinned")}),
        ("Health", {"fields": ("health", "health_path", "last_seen")}),
        ("More", {"fields": ("metadata", "created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        # One extra query for every row's capabilities instead of one per row.
        return super().get_queryset(request).prefetch_related("capabilities")

    @admin.display(description="capabilities")
    def capability_names(self, service: Service) -> str:
        return ", ".join(c.name for c in service.capabilities.all()) or "-"

    def has_operate_permission(self, request) -> bool:
        return is_operator(request.user)

    def _set_status(self, request, queryset, status: str, verb: str) -> None:
        changed = services.set_status(queryset, status)
        message = ngettext("%(n)d service %(verb)s.", "%(n)d services %(verb)s.", changed)
        self.message_user(request, message % {"n": changed, "verb": verb}, messages.SUCCESS)

    @admin.action(description="Drain selected services", permissions=["operate"])
    def drain_services(self, request, queryset) -> None:
        self._set_status(request, queryset, ServiceStatus.DRAINING, "draining")

    @admin.action(description="Enable selected services", permissions=["operate"])
    def enable_services(self, request, queryset) -> None:
        self._set_status(request, queryset, ServiceStatus.ACTIVE, "enabled")

    @admin.action(description="Disable selected services", permissions=["operate"])
    def disable_services(self, request, queryset) -> None:
        self._set_status(request, queryset, ServiceStatus.DISABLED, "disabled")

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        services.notify_service_registered(form.instance, created=not change)

    def delete_model(self, request, obj: Service) -> None:
        services.remove_service(obj.service_id)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for service_id in list(queryset.values_list("service_id", flat=True)):
                with suppress(Service.DoesNotExist):  # removed meanwhile: nothing to do
                    services.remove_service(service_id)


@admin.register(Capability)
class CapabilityAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "service_count", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_service_count=Count("services"))

    @admin.display(description="services", ordering="_service_count")
    def service_count(self, capability: Capability) -> int:
        return capability._service_count
