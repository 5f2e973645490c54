"""Top-level URLs: admin, the v1 API, auth tokens, OpenAPI, Prometheus, dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import (
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

handler400 = "moe_project.api_errors.json_bad_request"
handler404 = "moe_project.api_errors.json_not_found"
handler500 = "moe_project.api_errors.json_server_error"

api_v1 = [
    path("auth/token/", TokenObtainPairView.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/verify/", TokenVerifyView.as_view(), name="token-verify"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("registry.api.urls")),
    path("", include("routing.api.urls")),
    path("", include("telemetry.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("telemetry.urls")),
]
