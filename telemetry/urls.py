"""Telemetry URLs outside the API: Prometheus text at /metrics, the operator dashboard."""

from django.urls import path
from django_prometheus import exports

from telemetry import dashboard

urlpatterns = [
    path("metrics", exports.ExportToDjangoView, name="prometheus-metrics"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
]
