"""Admin for routing: history (read-only), strategy overrides, gate versions."""

import json
import math
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.db.models import Max, Min, Q, QuerySet
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from registry.services import bump_registry_version
from routing.models import GateModel, RoutingDecision, StrategyOverride, strategy_choices


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


class StrategyFilter(admin.SimpleListFilter):
    """The strategies this version knows, without ``SELECT DISTINCT strategy`` over the whole
    history table (what a plain ``"strategy"`` list filter runs on every page)."""

    title = "strategy"
    parameter_name = "strategy"

    def lookups(self, request, model_admin):
        known = [name for name, _ in strategy_choices()]
        chosen = self.value()
        if chosen and chosen not in known:  # an older version's strategy, typed in the URL
            known.append(chosen)
        return [(name, name) for name in known]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(strategy=self.value())
        return queryset


class HistoryQuerySet(QuerySet):
    """Routing history for the changelist: the date drill-down by index probes.

    The admin's date hierarchy asks ``datetimes(field, "year" | "month" | "day")``, which is
    ``SELECT DISTINCT date_trunc(...)`` over every matching row: a scan of the whole table
    on every page. Here the range comes from MIN/MAX (the ends of the ``decided_at`` index)
    and each year, month or day in it is one ``EXISTS`` probe on that index: at most a few
    dozen index lookups, whatever the table holds.
    """

    MAX_PROBES = 400

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        tz = tzinfo or timezone.get_current_timezone()
        ends = self.aggregate(first=Min(field_name), last=Max(field_name))
        if ends["first"] is None:
            return []
        first, last = ends["first"].astimezone(tz), ends["last"].astimezone(tz)
        found = []
        start = _truncate(first, kind, tz)
        while start <= last and len(found) < self.MAX_PROBES:
            end = _next(start, kind, tz)
            bucket = {f"{field_name}__gte": start, f"{field_name}__lt": end}
            if self.filter(**bucket).exists():
                found.append(start)
            start = end
        return found if order == "ASC" else found[::-1]


def _truncate(moment: datetime, kind: str, tz) -> datetime:
    parts = {"year": (moment.year, 1, 1), "month": (moment.year, moment.month, 1)}
    year, month, day = parts.get(kind, (moment.year, moment.month, moment.day))
    return timezone.make_aware(datetime(year, month, day), tz)


def _next(start: datetime, kind: str, tz) -> datetime:
    naive = start.replace(tzinfo=None)
    if kind == "year":
        naive = naive.replace(year=naive.year + 1)
    elif kind == "month":
        naive = naive.replace(year=naive.year + naive.month // 12, month=naive.month % 12 + 1)
    else:
        naive += timedelta(days=1)
    return timezone.make_aware(naive, tz)


class HistoryPaginator(Paginator):
    """Pages over routing history without ``SELECT COUNT(*)`` on every page.

    Counting is exact up to ``EXACT_LIMIT`` rows, found by reading at most that many primary
    keys through the (indexed) list order; beyond it the unfiltered list on PostgreSQL reports
    the planner's estimate (``pg_class.reltuples``), anything else ``EXACT_LIMIT``. Either
    way the page links reach the first ``EXACT_LIMIT`` rows only (a page further down would be
    an ``OFFSET`` over millions of rows): filters or the date drill-down narrow the rest.
    """

    EXACT_LIMIT = 10_000
    _beyond_limit = False

    @cached_property
    def num_pages(self) -> int:
        if self.count == 0 and not self.allow_empty_first_page:
            return 0
        pages = math.ceil(max(1, self.count - self.orphans) / self.per_page)
        return min(pages, max(1, math.ceil(self.EXACT_LIMIT / self.per_page)))

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        seen = len(queryset.values_list("pk", flat=True)[: self.EXACT_LIMIT + 1])
        self._beyond_limit = seen > self.EXACT_LIMIT
        if not self._beyond_limit:
            return seen
        return max(self.EXACT_LIMIT, self._estimate(queryset))

    @cached_property
    def count_is_exact(self) -> bool:
        return self.count <= self.EXACT_LIMIT and not self._beyond_limit

    @property
    def paged_rows(self) -> str:
        """How many rows the page links reach, for the list's text."""
        return f"{min(self.count, self.num_pages * self.per_page):,}"

    @property
    def count_text(self) -> str:
        """The count as the list shows it: exact, or said to be an estimate or a floor."""
        if self.count_is_exact:
            return f"{self.count:,}"
        if self.count > self.EXACT_LIMIT:
            return f"about {self.count:,}"
        return f"more than {self.EXACT_LIMIT:,}"

    @staticmethod
    def _estimate(queryset) -> int:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.where:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] and row[0] > 0 else 0


class HistoryChangeList(ChangeList):
    """Sorts by the ``sortable_by`` columns only, a hand-written ``?o=`` included."""

    def get_ordering_field(self, field_name):
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    """Routing history, read-only, usable at millions of rows (see ``HistoryPaginator``)."""

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
    list_filter = (
        StrategyFilter,
        ServiceFilter,
        OutcomeFilter,
        "no_eligible_service",
        "decided_at",
    )
    # Sorting by any other column sorts the whole table; these two are indexed.
    sortable_by = ("request_id", "decided_at")
    ordering = ("-decided_at",)  # what a refused ?o= falls back to
    # Exact matches only (see get_search_results): each is an indexed lookup.
    search_fields = ("request_id", "request_type", "primary_service")
    search_help_text = "Exact request id, request type or service id."
    date_hierarchy = "decided_at"
    list_per_page = 100
    paginator = HistoryPaginator
    show_full_result_count = False  # COUNT(*) over a large history table is slow

    def get_changelist(self, request, **kwargs):
        return HistoryChangeList

    def get_fields(self, request, obj=None):
        # ``client`` holds a user id (what the outcome check compares): show who it is there.
        fields = ["client_user" if f == "client" else f for f in super().get_fields(request, obj)]
        return list(dict.fromkeys(fields))

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "client_user")

    @admin.display(description="client")
    def client_user(self, obj):
        if not obj.client:
            return "none (routed in-process)"
        from django.contrib.auth import get_user_model

        user = None
        if obj.client.isdigit():
            user = get_user_model().objects.filter(pk=int(obj.client)).only("username").first()
        if user is None:
            return f"user {obj.client} (no longer exists)"
        return f"{user.get_username()} (user {obj.client})"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return HistoryQuerySet(model=queryset.model, query=queryset.query, using=queryset.db)

    def get_search_results(self, request, queryset, search_term):
        """Exact match on indexed columns; ``icontains`` would scan the whole table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return (
            queryset.filter(Q(request_id=term) | Q(request_type=term) | Q(primary_service=term)),
            False,
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_actions(self, request):
        # No bulk delete: "select all" then delete would load and list every matching row (the
        # confirmation page) and delete them in one transaction. Old history goes with the
        # prune_history job (MOE_HISTORY_RETENTION_DAYS); a superuser may still delete a row.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class StrategyOverrideForm(forms.ModelForm):
    """The model's rules, and the API's on expiry (its ``ttl_seconds``): a new override, or a
    changed expiry, lies in the future and at most ``MAX_TTL_SECONDS`` ahead, or is empty."""

    class Meta:
        model = StrategyOverride
        fields = "__all__"

    def clean_expires_at(self):
        from routing.api.serializers import MAX_TTL_SECONDS  # loads the engine: only on a save

        expires_at = self.cleaned_data["expires_at"]
        if expires_at is None or not (
            self.instance._state.adding or "expires_at" in self.changed_data
        ):
            return expires_at
        now = timezone.now()
        if expires_at <= now:
            raise forms.ValidationError(
                "Must be in the future (leave it empty for no expiry; end an override with the "
                "list's action)."
            )
        if expires_at > now + timedelta(seconds=MAX_TTL_SECONDS):
            raise forms.ValidationError(
                f"Must be at most {MAX_TTL_SECONDS // 86400} days ahead (leave it empty for no "
                "expiry)."
            )
        return expires_at


@admin.register(StrategyOverride)
class StrategyOverrideAdmin(admin.ModelAdmin):
    form = StrategyOverrideForm
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
    list_select_related = ("created_by",)  # one query for the page, not one per row
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
        now = timezone.now()
        selected = queryset.count()
        with transaction.atomic():
            # Already ended or expired ones keep the time they stopped applying.
            count = queryset.active(now).update(ended_at=now)
            if count:
                bump_registry_version()
        if not count:
            self.message_user(
                request, "None of the selected overrides was active.", messages.WARNING
            )
            return
        skipped = selected - count
        message = ngettext("Ended %(n)d override.", "Ended %(n)d overrides.", count) % {"n": count}
        if skipped:
            message += ngettext(
                " %(n)d was no longer active.", " %(n)d were no longer active.", skipped
            ) % {"n": skipped}
        self.message_user(request, message, messages.SUCCESS)


ESTIMATORS = ("ips", "snips", "dr")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def estimator_rows(evaluation: dict) -> list[tuple[str, float | None, float | None]]:
    """``(estimator, candidate, baseline)`` for each estimator the evaluation holds.

    The baseline is the active version's policy, or the logging policy when none was active
    (``evaluation["against"]`` says which); ``"active"`` is accepted for it too.
    """
    candidate = _dict(evaluation.get("candidate"))
    baseline = _dict(evaluation.get("baseline") or evaluation.get("active"))
    rows = []
    for name in ESTIMATORS:
        cand, base = _number(candidate.get(name)), _number(baseline.get(name))
        if cand is not None or base is not None:
            rows.append((name, cand, base))
    return rows


def dr_improvement(evaluation: dict) -> float | None:
    """The doubly robust estimate of candidate minus baseline, when the evaluation has one."""
    explicit = _number(evaluation.get("improvement"))
    if explicit is not None:
        return explicit
    for name, cand, base in estimator_rows(evaluation):
        if name == "dr" and cand is not None and base is not None:
            return cand - base
    return None


def evaluation_summary(evaluation: dict) -> str:
    """One line for the version list: "DR +0.042 [lower bound +0.011], ESS 412: activated"."""
    if not evaluation:
        return ""
    parts = []
    improvement = dr_improvement(evaluation)
    lower = _number(evaluation.get("lower_bound"))
    ess = _number(evaluation.get("ess"))
    if improvement is not None:
        parts.append(f"DR {improvement:+.3f}")
    if lower is not None:
        parts.append(f"[lower bound {lower:+.3f}]")
    text = " ".join(parts)
    if ess is not None:
        text = f"{text}, ESS {ess:.0f}" if text else f"ESS {ess:.0f}"
    activated = evaluation.get("activated")
    if isinstance(activated, bool):
        outcome = "activated" if activated else "not activated"
    else:
        outcome = str(evaluation.get("decision", ""))[:80]
    return f"{text}: {outcome}" if text and outcome else text or outcome


def refusal(evaluation: dict) -> str | None:
    """Why the evaluation kept the version from going live, or None if it did not."""
    if evaluation.get("activated") is False or evaluation.get("better") is False:
        return str(evaluation.get("decision") or "no reason recorded")
    return None


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


# What the evaluation's top-level keys mean, in the order an operator reads them.
_FACTS = (
    ("decision", "Decision"),
    ("activated", "Activated"),
    ("improvement", "DR improvement"),
    ("lower_bound", "Lower confidence bound of the improvement"),
    ("confidence", "Confidence"),
    ("std_error", "Standard error"),
    ("ess", "Effective sample size"),
    ("against", "Compared with"),
    ("held_out", "Held-out decisions"),
    ("usable", "Usable (known propensity)"),
    ("method", "Method"),
)


def evaluation_report(evaluation: dict):
    """The evaluation as HTML: estimators side by side, the decision, then the raw JSON."""
    if not evaluation:
        return "Not evaluated (no off-policy evaluation was recorded for this version)."
    estimators = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                name.upper(),
                _fmt(cand),
                _fmt(base),
                _fmt(None if None in (cand, base) else cand - base, True),
            )
            for name, cand, base in estimator_rows(evaluation)
        ),
    )
    facts = [(label, evaluation[key]) for key, label in _FACTS if key in evaluation]
    objective = _dict(evaluation.get("objective"))
    if objective:
        facts.append(("Objective", objective.get("description") or objective.get("kind", "")))
    raw = json.dumps(evaluation, indent=2, sort_keys=True, default=str)
    return format_html(
        '<table class="gate-evaluation"><thead><tr><th>estimator</th><th>candidate</th>'
        "<th>baseline</th><th>difference</th></tr></thead><tbody>{}</tbody></table>"
        '<table class="gate-evaluation-facts"><tbody>{}</tbody></table>'
        "<details><summary>All figures (JSON)</summary><pre>{}</pre></details>",
        estimators,
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", facts),
        raw,
    )


@admin.register(GateModel)
class GateModelAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "active",
        "trained_at",
        "evaluation_summary",
        "val_agreement",
        "val_loss",
        "notes",
    )
    list_filter = ("active",)
    fieldsets = (
        (None, {"fields": ("version", "active", "trained_at", "notes")}),
        ("Off-policy evaluation", {"fields": ("evaluation_report",)}),
        ("Metrics", {"fields": ("validation_metrics", "training_metrics")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    # "active" only through the action: it bumps the registry version so workers reload,
    # and keeps exactly one version active.
    readonly_fields = (
        "version",
        "active",
        "trained_at",
        "evaluation_report",
        "training_metrics",
        "validation_metrics",
        "created_at",
        "updated_at",
    )
    exclude = ("weights", "policy_weights", "evaluation")
    actions = ["activate"]

    def get_queryset(self, request):
        # The weights (about 100 kB a version, more with a larger fleet) are never shown: a
        # page of a hundred hourly versions read ten megabytes for nothing.
        return super().get_queryset(request).defer("weights", "policy_weights")

    @admin.display(description="evaluation")
    def evaluation_summary(self, obj):
        return evaluation_summary(obj.evaluation or {}) or None

    @admin.display(description="off-policy evaluation")
    def evaluation_report(self, obj):
        return evaluation_report(obj.evaluation or {})

    @admin.display(description="val agreement on good")
    def val_agreement(self, obj):
        # How often the gate's top choice was the service that did well on held-out history
        # (routing.core.gate.evaluate_gate); there is no accuracy: no label says which was right.
        value = _number(_dict(obj.validation_metrics).get("agreement_on_good"))
        return None if value is None else f"{value:.1%}"

    @admin.display(description="val loss")
    def val_loss(self, obj):
        return obj.validation_metrics.get("loss")

    def has_add_permission(self, request):
        return False

    @admin.action(
        description="Activate (or roll back to) the selected version",
        permissions=["change"],
    )
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        from routing.training import activate_gate_version

        row = queryset.get()
        refused = refusal(_dict(row.evaluation))
        if refused is not None and request.POST.get("confirm") != "yes":
            # A version the evaluation kept from going live is the operator's call, made on
            # a page that says why it was kept out (Django's delete confirmation, likewise).
            return TemplateResponse(
                request,
                "admin/routing/gatemodel/activate_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Activate gate v{row.version}?",
                    "opts": self.model._meta,
                    "version": row,
                    "refused": refused,
                    "current": GateModel.objects.filter(active=True)
                    .exclude(pk=row.pk)
                    .only("version")
                    .first(),
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        activate_gate_version(row.version)
        if refused is None:
            self.message_user(request, f"Gate v{row.version} is now active.", messages.SUCCESS)
        else:
            # The operator's call, but not a silent one.
            self.message_user(
                request,
                f"Gate v{row.version} is now active, confirmed although its off-policy "
                f"evaluation did not activate it: {refused}",
                messages.WARNING,
            )
