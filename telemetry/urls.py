"""Telemetry URLs outside the API: Prometheus text at /metrics, the operator dashboard."""

import hmac

from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.generic import RedirectView
from django_prometheus import exports

from moe_project.api_errors import error_body
from telemetry import dashboard


def prometheus_metrics(request):
    """Prometheus text; gauges that describe the fleet now are refreshed before export.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, django-prometheus's view builds a registry with
    prometheus_client's ``MultiProcessCollector``: the series of every web worker, added up
    (counters and histograms summed, the load-balance gauge as last set by any worker).

    With ``MOE_METRICS_TOKEN`` set, a scrape must carry it (``Authorization: Bearer <token>``,
    Prometheus's ``authorization.credentials``); without it, /metrics asks for nothing.
    """
    from routing.runtime import get_router

    token = settings.MOE_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            body = error_body("not_authenticated", "A valid metrics token is required.")
            return JsonResponse(body, status=401, headers={"WWW-Authenticate": "Bearer"})

    router = get_router()
    snapshot = router.snapshot()
    router.metrics.summary(snapshot, router.live_states(list(snapshot.service_ids)))
    return exports.ExportToDjangoView(request)


urlpatterns = [
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    # The bare host: where an operator starts (not a 404).
    path("", RedirectView.as_view(pattern_name="dashboard"), name="home"),
]
