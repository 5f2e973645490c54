"""Telemetry API: trigger a rebalance in Celery and read its state."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.views import APIView

from moe_project.api_docs import JSON_BODY, OPERATOR, error_responses
from moe_project.jobs import job_status, queue_job
from moe_project.strict_serializers import StrictSerializer
from registry.permissions import IsOperator
from routing.api.gate_views import (
    TASK_ID_PARAMETER,
    GateRetrainQueuedSerializer,
    GateRetrainStatusSerializer,
)
from telemetry.tasks import rebalance


class RebalanceRequestSerializer(StrictSerializer):
    """Body of ``POST /api/v1/load/rebalance``: none, or an empty object (the job takes no
    parameters; anything else is refused, naming it, rather than silently ignored)."""


class RebalanceView(APIView):
    """POST: queue a rebalance job; 202 with its task id."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="load_rebalance",
        summary="Rebalance service weights now (in Celery)",
        request=RebalanceRequestSerializer,
        responses={
            202: OpenApiResponse(GateRetrainQueuedSerializer, description="Queued."),
            **error_responses(
                *JSON_BODY, *OPERATOR, 503, descriptions={503: "The job broker is unreachable."}
            ),
        },
        tags=["load"],
    )
    def post(self, request):
        RebalanceRequestSerializer(data=request.data).is_valid(raise_exception=True)
        return queue_job(rebalance, "rebalance")


class RebalanceStatusView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="load_rebalance_status",
        summary="State and result of a rebalance job",
        parameters=[TASK_ID_PARAMETER],
        responses={200: GateRetrainStatusSerializer, **error_responses(400, 404, *OPERATOR)},
        tags=["load"],
    )
    def get(self, request, task_id: str):
        return job_status(rebalance, task_id)
