"""Telemetry views: health."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from telemetry import health


class HealthView(APIView):
    """Database, Redis and router status; 200 when usable, 503 when the database is down."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []  # load balancers probe it often; it must answer without Redis

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        report = health.check_all()
        return Response(report, status=200 if report["status"] != "down" else 503)
