"""Admin for routing: history (read-only), strategy overrides, gate versions."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from registry.services import bump_registry_version
from routing.models import GateModel, RoutingDecision, StrategyOverride


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("success", "Success"), ("failure", "Failure"), ("none", "Not reported")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "success":
            return queryset.filter(success=True)
        if value == "failure":
            return queryset.filter(success=False)
        if value == "none":
            return queryset.filter(success__isnull=True)
        return queryset


class ServiceFilter(admin.SimpleListFilter):
    title = "service"
    parameter_name = "service"

    def lookups(self, request, model_admin):
        from registry.models import Service

        return [(s, s) for s in Service.objects.values_list("service_id", flat=True)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(primary_service=self.value())
        return queryset


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    list_display = (
        "request_id",
        "decided_at",
        "request_type",
        "strategy",
        "requested_strategy",
        "primary_service",
        "confidence",
        "decision_ms",
        "success",
        "latency_ms",
        "status_code",
    )
    list_filter = ("strategy", ServiceFilter, OutcomeFilter, "no_eligible_service", "decided_at")
    search_fields = ("request_id", "request_type", "primary_service")
    date_hierarchy = "decided_at"
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over a large history table is slow

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(StrategyOverride)
class StrategyOverrideAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "strategy",
        "scope",
        "request_type",
        "top_k",
        "expires_at",
        "ended_at",
        "is_active_now",
        "created_by",
        "created_at",
    )
    list_filter = ("strategy", "scope")
    search_fields = ("request_type", "reason")
    readonly_fields = ("created_by", "created_at", "updated_at")
    actions = ["end_now"]

    @admin.display(boolean=True, description="active")
    def is_active_now(self, obj):
        return obj.is_active()

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            bump_registry_version()

    def delete_model(self, request, obj):
        with transaction.atomic():
            super().delete_model(request, obj)
            bump_registry_version()

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            bump_registry_version()

    @admin.action(description="End the selected overrides now")
    def end_now(self, request, queryset):
        with transaction.atomic():
            count = queryset.filter(ended_at__isnull=True).update(ended_at=timezone.now())
            bump_registry_version()
        self.message_user(request, f"Ended {count} override(s).", messages.SUCCESS)


@admin.register(GateModel)
class GateModelAdmin(admin.ModelAdmin):
    list_display = ("version", "active", "trained_at", "val_accuracy", "val_loss", "notes")
    list_filter = ("active",)
    readonly_fields = (
        "version",
        "trained_at",
        "training_metrics",
        "validation_metrics",
        "created_at",
        "updated_at",
    )
    exclude = ("weights", "policy_weights")
    actions = ["activate"]

    @admin.display(description="val accuracy")
    def val_accuracy(self, obj):
        return obj.validation_metrics.get("accuracy")

    @admin.display(description="val loss")
    def val_loss(self, obj):
        return obj.validation_metrics.get("loss")

    def has_add_permission(self, request):
        return False

    @admin.action(description="Activate (or roll back to) the selected version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        from routing.training import activate_gate_version

        version = queryset.get().version
        activate_gate_version(version)
        self.message_user(request, f"Gate v{version} is now active.", messages.SUCCESS)
