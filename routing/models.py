"""Routing models: strategy overrides, routing history, gate versions."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from routing.choices import OverrideScope


def strategy_choices() -> list[tuple[str, str]]:
    """The routing strategies, as the API offers them (referenced by migrations; keep the
    name). Called, not imported at module level: the strategies load torch, which a management
    command need not, and a new strategy needs no migration."""
    from routing.core.strategies import STRATEGY_NAMES

    return [(name, name) for name in STRATEGY_NAMES]


def max_top_k() -> int:
    """The largest k the API takes (referenced by migrations; keep the name)."""
    from routing.validation import MAX_TOP_K

    return MAX_TOP_K


class StrategyOverrideQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(ended_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class StrategyOverride(models.Model):
    """An operator's pinned strategy, globally or for one request type; beats the request's."""

    strategy = models.CharField(max_length=32, choices=strategy_choices)
    scope = models.CharField(max_length=16, choices=OverrideScope.choices)
    request_type = models.CharField(max_length=64, blank=True, default="")
    top_k = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(max_top_k)]
    )
    reason = models.CharField(max_length=500, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StrategyOverrideQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="global", request_type="")
                | Q(scope="request_type") & ~Q(request_type=""),
                name="override_scope_matches_request_type",
            ),
        ]

    def __str__(self) -> str:
        target = "global" if self.scope == OverrideScope.GLOBAL else f"type={self.request_type}"
        return f"{self.strategy} ({target})"

    def clean(self) -> None:
        # The check constraint's own error names no field; say which one and why, as the API.
        if self.scope == OverrideScope.REQUEST_TYPE and not self.request_type:
            raise ValidationError({"request_type": "Required when scope is request_type."})
        if self.scope == OverrideScope.GLOBAL and self.request_type:
            raise ValidationError({"request_type": "Must be empty when scope is global."})

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.ended_at is None and (self.expires_at is None or self.expires_at > now)


class RoutingDecision(models.Model):
    """One routed request: the decision, written by the history flush, and its later outcome."""

    request_id = models.CharField(max_length=64, unique=True)
    request_type = models.CharField(max_length=64, blank=True, default="", db_index=True)
    features = models.JSONField(default=dict, blank=True)
    requested_strategy = models.CharField(max_length=32)
    strategy = models.CharField(max_length=32, db_index=True)
    override_id = models.BigIntegerField(null=True, blank=True)
    selected_services = models.JSONField(default=list, blank=True)
    primary_service = models.CharField(max_length=64, blank=True, default="", db_index=True)
    scores = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(default=0.0)
    reason = models.CharField(max_length=500, blank=True, default="")
    no_eligible_service = models.BooleanField(default=False)
    decision_ms = models.FloatField(default=0.0)
    # Probability with which the primary service was chosen (None: not known, e.g. an
    # override of a randomised strategy in a batch); off-policy evaluation needs it.
    propensity = models.FloatField(null=True, blank=True)
    # The id of the user who routed it: only that client (or an operator, or a holder of
    # report_any_outcome) may report its outcome. Empty: routed in-process (no client).
    client = models.CharField(max_length=64, blank=True, default="")
    # The reward of the outcome under the objective in force when it was reported.
    reward = models.FloatField(null=True, blank=True)
    decided_at = models.DateTimeField(db_index=True)
    success = models.BooleanField(null=True, blank=True)
    outcome_service = models.CharField(max_length=64, blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-decided_at"]
        # Every admin list filter is indexed together with the list's order (newest first),
        # so a filtered page is an index range scan even with millions of rows.
        indexes = [
            models.Index(fields=["strategy", "decided_at"]),
            models.Index(fields=["primary_service", "decided_at"], name="routing_dec_service_time"),
            models.Index(fields=["success", "decided_at"], name="routing_dec_success_time"),
            models.Index(
                fields=["no_eligible_service", "decided_at"], name="routing_dec_noelig_time"
            ),
        ]
        permissions = [
            ("view_all_decisions", "Can watch every client's decisions on the live feed"),
            ("report_any_outcome", "Can report the outcome of any client's request"),
        ]

    def __str__(self) -> str:
        target = ",".join(self.selected_services) or "no service"
        return f"{self.request_id} -> {target} ({self.strategy})"


class GateModel(models.Model):
    """A trained version of the learned gate (and the adaptive policy), weights as bytes."""

    version = models.PositiveIntegerField(unique=True)
    weights = models.BinaryField()
    policy_weights = models.BinaryField(null=True, blank=True)
    training_metrics = models.JSONField(default=dict, blank=True)
    validation_metrics = models.JSONField(default=dict, blank=True)
    # Off-policy evaluation against the version that was active when this one was trained
    # (estimators, effective sample size, confidence bound, the decision); see training.py.
    evaluation = models.JSONField(default=dict, blank=True)
    trained_at = models.DateTimeField(default=timezone.now)
    active = models.BooleanField(default=False, db_index=True)
    notes = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=Q(active=True), name="one_active_gate_model"
            )
        ]

    def __str__(self) -> str:
        return f"gate v{self.version}{' (active)' if self.active else ''}"
