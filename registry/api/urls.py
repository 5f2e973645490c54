"""Registry API URLs under /api/v1/ (no trailing slashes)."""

from django.urls import path

from registry.api import views

urlpatterns = [
    path("services", views.ServiceListView.as_view(), name="service-list"),
    path("services/register", views.ServiceRegisterView.as_view(), name="service-register"),
    path("services/<str:service_id>", views.ServiceDetailView.as_view(), name="service-detail"),
]
