"""Telemetry views: health."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from telemetry import health

HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "checks": {
            "type": "object",
            "description": "database, redis, celery, router: each with its own status.",
            "additionalProperties": {"type": "object"},
        },
    },
}


class HealthView(APIView):
    """Database, Redis and router status; 200 when usable, 503 when the database is down."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []  # load balancers probe it often; it must answer without Redis

    @extend_schema(
        operation_id="health",
        summary="Database, Redis, Celery and router status",
        auth=[],
        responses={
            200: OpenApiResponse(HEALTH_SCHEMA, description="Usable (ok or degraded)."),
            503: OpenApiResponse(HEALTH_SCHEMA, description="Down: the database is unreachable."),
        },
        tags=["health"],
    )
    def get(self, request):
        report = health.check_all()
        return Response(report, status=200 if report["status"] != "down" else 503)
