"""Top-level URLs: admin, the v1 API, auth tokens, OpenAPI, Prometheus, dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from moe_project.api_docs import JSON_BODY, error_responses, raw_schema_serializer
from moe_project.auth_views import (
    StrictTokenObtainPairView,
    StrictTokenRefreshView,
    StrictTokenVerifyView,
)
from moe_project.schema_extensions import NO_NUL_PATTERN, NON_BLANK_PATTERN

_TOKEN = {"type": "string"}
# The token views' fields: required strings, not blank (surrounding whitespace is trimmed);
# other keys are refused (moe_project.auth_views).
_NON_BLANK = {"type": "string", "minLength": 1, "pattern": NON_BLANK_PATTERN}


def _body(name: str, **fields: dict):
    schema = {
        "type": "object",
        "required": list(fields),
        "properties": fields,
        "additionalProperties": False,
    }
    return raw_schema_serializer(name, lambda: schema)


def _token_view(view, summary: str, request, answer: dict):
    """A token view with every answer it can give documented (401: bad credentials)."""
    responses = {200: {"type": "object", **answer}, **error_responses(*JSON_BODY, 401, 429)}
    return extend_schema_view(
        post=extend_schema(summary=summary, request=request, responses=responses, tags=["auth"])
    )(view)


handler400 = "moe_project.api_errors.json_bad_request"
handler404 = "moe_project.api_errors.json_not_found"
handler500 = "moe_project.api_errors.json_server_error"


def _also_without_slash(patterns):
    """Every other endpoint has no trailing slash, so clients leave it off here too: the token
    endpoints answer at both addresses (Django would answer a POST without it with an HTML
    redirect), the second left out of the schema."""
    aliases = []
    for pattern in patterns:
        view = pattern.callback.view_class
        unlisted = extend_schema_view(post=extend_schema(exclude=True))(
            type(f"Unlisted{view.__name__}", (view,), {})
        )
        route = str(pattern.pattern).rstrip("/")
        aliases.append(path(route, unlisted.as_view(), name=f"{pattern.name}-no-slash"))
    return aliases


_token_paths = [
    path(
        "auth/token/",
        _token_view(
            StrictTokenObtainPairView,
            "Access and refresh token for a login",
            _body(
                "TokenObtainRequestSerializer",
                username=_NON_BLANK,
                password={"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
            ),
            {
                "required": ["access", "refresh"],
                "properties": {"access": _TOKEN, "refresh": _TOKEN},
            },
        ).as_view(),
        name="token-obtain",
    ),
    path(
        "auth/token/refresh/",
        _token_view(
            StrictTokenRefreshView,
            "A new access token for a refresh token",
            _body("TokenRefreshRequestSerializer", refresh=_NON_BLANK),
            {"required": ["access"], "properties": {"access": _TOKEN, "refresh": _TOKEN}},
        ).as_view(),
        name="token-refresh",
    ),
    path(
        "auth/token/verify/",
        _token_view(
            StrictTokenVerifyView,
            "Whether a token is valid (200 with {})",
            _body("TokenVerifyRequestSerializer", token=_NON_BLANK),
            {},
        ).as_view(),
        name="token-verify",
    ),
]

api_v1 = [
    *_token_paths,
    *_also_without_slash(_token_paths),
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
