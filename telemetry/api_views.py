"""Telemetry API: trigger a rebalance in Celery and read its state."""

from celery.result import AsyncResult
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from moe_project.api_docs import OPERATOR, error_responses
from moe_project.api_errors import APIError
from registry.permissions import IsOperator
from routing.api.gate_views import (
    TASK_ID_PARAMETER,
    TASK_ID_RE,
    GateRetrainQueuedSerializer,
    GateRetrainStatusSerializer,
)
from telemetry.tasks import rebalance


class RebalanceView(APIView):
    """POST: queue a rebalance job; 202 with its task id."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="load_rebalance",
        summary="Rebalance service weights now (in Celery)",
        request=None,
        responses={
            202: OpenApiResponse(GateRetrainQueuedSerializer, description="Queued."),
            **error_responses(*OPERATOR, 503, descriptions={503: "The job broker is unreachable."}),
        },
        tags=["load"],
    )
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

    @extend_schema(
        operation_id="load_rebalance_status",
        summary="State and result of a rebalance job",
        parameters=[TASK_ID_PARAMETER],
        responses={200: GateRetrainStatusSerializer, **error_responses(400, *OPERATOR)},
        tags=["load"],
    )
    def get(self, request, task_id: str):
        if not TASK_ID_RE.fullmatch(task_id):
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
