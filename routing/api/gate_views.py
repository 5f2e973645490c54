"""Gate API: retrain the learned gate in Celery on demand, follow the job, list the versions.

Operators only (staff count as operators). The retrain endpoints mirror the rebalance ones in
``telemetry.api_views``: 202 with a task id, then poll ``retrain/<task_id>`` for its state.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from moe_project.api_docs import JSON_BODY, OPERATOR, error_responses
from moe_project.jobs import TASK_ID_MAX_LENGTH, job_status, queue_job
from moe_project.strict_serializers import (
    QueryIntegerField,
    SingleValueQuerySerializer,
    StrictIntegerField,
    StrictSerializer,
)
from registry.permissions import IsOperator
from routing.models import GateModel
from routing.tasks import retrain_gate

# Bounds on what a caller may ask one retraining to read: below the minimum nothing is
# learned; above the maximum one job would hold a worker's CPU for minutes.
MIN_MAX_EXAMPLES = 50
MAX_MAX_EXAMPLES = 100_000
DEFAULT_VERSIONS = 50
MAX_VERSIONS = 200
# Task ids are the job kind and a UUID (routing-retrain-gate-<uuid>); ASCII only (str.isalnum
# would also take "é" or "²").
TASK_ID_PARAMETER = OpenApiParameter(
    "task_id",
    {"type": "string", "pattern": rf"^[A-Za-z0-9-]{{1,{TASK_ID_MAX_LENGTH}}}$"},
    OpenApiParameter.PATH,
    description="The id the job's 202 answer gave.",
)


class GateRetrainRequestSerializer(StrictSerializer):
    """Optional body of ``POST /api/v1/gate/retrain``."""

    max_examples = StrictIntegerField(
        required=False,
        min_value=MIN_MAX_EXAMPLES,
        max_value=MAX_MAX_EXAMPLES,
        help_text="Most recent decisions with outcomes to learn from (default: the server's).",
    )


class GateRetrainQueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField()
    status_url = serializers.CharField(help_text="Relative to this endpoint's URL.")


class GateRetrainStatusSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField(help_text="Celery state: PENDING, STARTED, SUCCESS, ...")
    result = serializers.DictField(
        required=False, help_text="When SUCCESS: what retraining did (trained, version, ...)."
    )
    error = serializers.CharField(required=False, help_text="When FAILURE: the error's type.")
    queued_for_s = serializers.FloatField(
        required=False, help_text="When PENDING: seconds since the job was queued."
    )
    worker_lost = serializers.BooleanField(
        required=False,
        help_text=(
            "When STARTED by a worker that has not been seen for MOE_WORKER_LOST_SECONDS, or "
            "has been started again since (killed or crashed mid-job): true. The job is not "
            "running; the state stays STARTED until the broker hands it out again, if ever "
            "(see detail). Absent otherwise."
        ),
    )
    worker = serializers.CharField(
        required=False, help_text="With worker_lost: the Celery worker (nodename) that was lost."
    )
    worker_last_seen_s = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="With worker_lost: seconds since that worker was last seen (null: unknown).",
    )
    detail = serializers.CharField(
        required=False,
        help_text=(
            "When PENDING for longer than MOE_JOB_PICKUP_SECONDS and no worker has taken a job "
            "from the queue since: that no worker has picked it up, and how to start one. With "
            "worker_lost: which worker stopped and when it was last seen, when (if ever) the "
            "broker hands the job out again, and that queuing it again is safe."
        ),
    )


class GateVersionSerializer(serializers.ModelSerializer):
    """A gate version as the API shows it: metrics and evaluation, never the weights."""

    class Meta:
        model = GateModel
        fields = ["version", "active", "trained_at", "notes", "validation_metrics", "evaluation"]


class GateVersionListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = GateVersionSerializer(many=True)


class GateVersionQuerySerializer(SingleValueQuerySerializer):
    limit = QueryIntegerField(
        required=False, default=DEFAULT_VERSIONS, min_value=1, max_value=MAX_VERSIONS
    )


def recent_gate_versions(limit: int) -> list[GateModel]:
    """The newest ``limit`` gate versions, newest first, without loading their weights."""
    fields = GateVersionSerializer.Meta.fields
    return list(GateModel.objects.only(*fields).order_by("-version")[:limit])


class GateRetrainView(APIView):
    """POST: queue a retraining of the gate; 202 with its task id."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="gate_retrain",
        summary="Retrain the learned gate now (in Celery)",
        request=GateRetrainRequestSerializer,
        responses={
            202: OpenApiResponse(GateRetrainQueuedSerializer, description="Queued."),
            **error_responses(
                *JSON_BODY, *OPERATOR, 503, descriptions={503: "The job broker is unreachable."}
            ),
        },
        tags=["gate"],
    )
    def post(self, request):
        body = GateRetrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return queue_job(
            retrain_gate, "retrain", max_examples=body.validated_data.get("max_examples")
        )


class GateRetrainStatusView(APIView):
    """GET: the state of a retraining job and, once it succeeded, its result."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="gate_retrain_status",
        summary="State and result of a retraining job",
        parameters=[TASK_ID_PARAMETER],
        responses={200: GateRetrainStatusSerializer, **error_responses(400, 404, *OPERATOR)},
        tags=["gate"],
    )
    def get(self, request, task_id: str):
        return job_status(retrain_gate, task_id)


class GateVersionListView(APIView):
    """GET: gate versions, newest first (operators and staff)."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="gate_versions_list",
        summary="Gate versions with their validation metrics and off-policy evaluation",
        parameters=[
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_VERSIONS},
                description=f"How many, 1..{MAX_VERSIONS} (default {DEFAULT_VERSIONS}).",
            )
        ],
        responses={200: GateVersionListSerializer, **error_responses(400, *OPERATOR)},
        tags=["gate"],
    )
    def get(self, request):
        query = GateVersionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        versions = recent_gate_versions(query.validated_data["limit"])
        results = GateVersionSerializer(versions, many=True).data
        return Response({"count": len(results), "results": results})
