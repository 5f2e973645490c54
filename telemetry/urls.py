"""Telemetry URLs outside the API: Prometheus text at /metrics, the operator dashboard."""

from django.urls import path
from django_prometheus import exports

from telemetry import dashboard


def prometheus_metrics(request):
    """Prometheus text; gauges that describe the fleet now are refreshed before export.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, django-prometheus's view builds a registry with
    prometheus_client's ``MultiProcessCollector``: the series of every web worker, added up
    (counters and histograms summed, the load-balance gauge as last set by any worker).
    """
    from routing.runtime import get_router

    router = get_router()
    snapshot = router.snapshot()
    router.metrics.summary(snapshot, router.live_states(list(snapshot.service_ids)))
    return exports.ExportToDjangoView(request)


urlpatterns = [
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
]
