"""Telemetry API URLs under /api/v1/: health, rebalance jobs."""

from django.urls import path

from telemetry import api_views, views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("load/rebalance", api_views.RebalanceView.as_view(), name="rebalance"),
    path(
        "load/rebalance/<str:task_id>",
        api_views.RebalanceStatusView.as_view(),
        name="rebalance-status",
    ),
]
