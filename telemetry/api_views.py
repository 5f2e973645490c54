"""Telemetry API: trigger a rebalance in Celery and read its state."""

from celery.result import AsyncResult
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from moe_project.api_errors import APIError
from registry.permissions import IsOperator
from telemetry.tasks import rebalance


class RebalanceView(APIView):
    """POST: queue a rebalance job; 202 with its task id."""

    permission_classes = [IsOperator]

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            result = rebalance.delay()
        except Exception as exc:  # broker unreachable: say so instead of a 500
            raise APIError(
                "broker_unavailable", f"Could not queue the job: {type(exc).__name__}", None, 503
            ) from None
        return Response(
            {"task_id": result.id, "state": "PENDING", "status_url": f"rebalance/{result.id}"},
            status=status.HTTP_202_ACCEPTED,
        )


class RebalanceStatusView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, task_id: str):
        if len(task_id) > 64 or not all(c.isalnum() or c == "-" for c in task_id):
            raise APIError(
                "validation_error",
                "Invalid input: task_id: not a task id.",
                {"task_id": ["Not a task id."]},
            )
        result = AsyncResult(task_id, app=rebalance.app)
        body = {"task_id": task_id, "state": result.state}
        if result.successful():
            body["result"] = result.result
        elif result.failed():
            body["error"] = type(result.result).__name__
        return Response(body)
