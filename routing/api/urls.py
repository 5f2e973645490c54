"""Routing API URLs (under /api/v1/)."""

from django.urls import path

from routing.api import gate_views, views
from routing.api.proxy import proxy_view

urlpatterns = [
    path("route", views.RouteView.as_view(), name="route"),
    path("route/batch", views.RouteBatchView.as_view(), name="route-batch"),
    path("route/<str:request_id>/outcome", views.OutcomeView.as_view(), name="route-outcome"),
    path("strategy/override", views.OverrideListView.as_view(), name="override-list"),
    path(
        "strategy/override/<int:override_id>",
        views.OverrideDetailView.as_view(),
        name="override-detail",
    ),
    path("metrics", views.MetricsView.as_view(), name="metrics-json"),
    path("demo/smart_routing", views.DemoView.as_view(), name="demo-smart-routing"),
    path("ping", views.ping, name="ping"),
    path("gate/retrain", gate_views.GateRetrainView.as_view(), name="gate-retrain"),
    path(
        "gate/retrain/<str:task_id>",
        gate_views.GateRetrainStatusView.as_view(),
        name="gate-retrain-status",
    ),
    path("gate/versions", gate_views.GateVersionListView.as_view(), name="gate-versions"),
    path("proxy/", proxy_view, name="proxy-root"),
    path("proxy/<path:path>", proxy_view, name="proxy"),
]
