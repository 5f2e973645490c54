"""Routing API views: thin; validation in routing.validation, work in routing.runtime."""

import gc

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from moe_project import schema_extensions  # noqa: F401  (registers the JWT scheme)
from moe_project.api_docs import CLIENT, JSON_BODY, OPERATOR, error_responses
from moe_project.api_errors import APIError, error_body
from moe_project.authentication import CachedStatelessJWTAuthentication
from moe_project.json_api import BATCH_ENVELOPE_LEVELS
from registry.permissions import IsOperator
from routing import services
from routing.api import schemas
from routing.api.serializers import (
    OutcomeDocSerializer,
    OutcomeResultSerializer,
    OutcomeSerializer,
    OverrideCreateDocSerializer,
    OverrideCreateSerializer,
    OverrideListSerializer,
    OverrideSerializer,
)
from routing.core.types import round6
from routing.demo import run_demo
from routing.forwarding import forward
from routing.models import StrategyOverride
from routing.runtime import Routed, get_router
from routing.validation import parse_batch_body, parse_route_body

# The hot endpoints trust the signed token's claims instead of loading the user row, so a
# routed request costs no database query (a disabled user's token works until it expires).
HOT_PATH_AUTH = [CachedStatelessJWTAuthentication, SessionAuthentication]


def route_response(routed: Routed, requested: str) -> dict:
    d = routed.decision
    body = {
        "request_id": routed.request_id,
        "selected_services": list(d.selected),
        "routing_strategy": d.strategy,
        "requested_strategy": requested,
        "scores": {k: round6(v) for k, v in d.scores.items()},
        "confidence": round6(d.confidence),
        "reason": d.reason,
        "latency_ms": round(d.latency_ms, 4),
        "propensity": None if d.propensity is None else round6(d.propensity),
    }
    if routed.override_id is not None:
        body["override_id"] = routed.override_id
    if d.no_eligible_service:
        body["error"] = {
            "code": "no_eligible_service",
            "message": d.reason or "No service can take this request.",
            "fields": {},
        }
    return body


def _requested(strategy):
    from django.conf import settings

    return strategy or settings.MOE_DEFAULT_STRATEGY


class RouteView(APIView):
    """Route one request (optionally forwarding it to the chosen service)."""

    authentication_classes = HOT_PATH_AUTH
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="route",
        summary="Route one request",
        request=schemas.RouteRequestSerializer,
        responses={
            200: OpenApiResponse(schemas.RouteResponseSerializer, description="Routed."),
            **error_responses(*JSON_BODY, *CLIENT, 502),
            503: OpenApiResponse(
                schemas.NoEligibleServiceSerializer,
                description=(
                    "No service can take the request (`error.code`: no_eligible_service), or "
                    "this worker cannot read the registry yet (`registry_unavailable`)."
                ),
            ),
        },
        tags=["route"],
    )
    def post(self, request):
        inp = parse_route_body(request.data)
        router = get_router()
        routed = router.route(inp.request, inp.strategy, inp.top_k, client=request.user.pk)
        body = route_response(routed, _requested(inp.strategy))
        if routed.decision.no_eligible_service:
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if inp.forward:
            body["forwarded"] = forward(
                router,
                routed,
                inp.request.payload,
                idempotency_key=request.headers.get("Idempotency-Key") or None,
                client_deadline_ms=_client_deadline_ms(request),
            )
        return Response(body)


def _client_deadline_ms(request) -> float | None:
    """The caller's ``X-Moe-Deadline-Ms`` for a forwarded call; 400 naming it when bad."""
    from routing.forwarding import DEADLINE_HEADER
    from routing.validation import FieldErrors, ascii_number

    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return None
    value = ascii_number(raw)  # as the proxy reads it: ASCII digits, finite
    if not value >= 1.0:
        raise FieldErrors({DEADLINE_HEADER: ["Must be a number of milliseconds >= 1."]})
    return value


class RouteBatchView(APIView):
    """Route many requests in one call (vectorised); the item limit is MOE_BATCH_MAX_ITEMS."""

    json_envelope_levels = BATCH_ENVELOPE_LEVELS  # an item's payload nests as deep as /route's
    authentication_classes = HOT_PATH_AUTH
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="route_batch",
        summary="Route many requests in one call",
        request=schemas.RouteBatchRequestSerializer,
        responses={
            200: OpenApiResponse(
                schemas.RouteBatchResponseSerializer,
                description="One route response per request, in order (a request no service "
                "can take has `error.code` no_eligible_service).",
            ),
            **error_responses(
                *JSON_BODY,
                *CLIENT,
                503,
                descriptions={
                    503: "This worker cannot read the registry yet (`registry_unavailable`)."
                },
            ),
        },
        tags=["route"],
    )
    def post(self, request):
        # A batch allocates tens of thousands of short-lived objects, none of them cyclic:
        # collecting meanwhile only rescans them (it roughly doubled the cost per decision).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            inp = parse_batch_body(request.data)
            routed = get_router().route_batch(
                inp.requests, inp.strategy, inp.top_k, client=request.user.pk
            )
            requested = _requested(inp.strategy)
            results = [route_response(r, requested) for r in routed]
        finally:
            if was_enabled:
                gc.enable()
        return Response({"results": results, "count": len(results)})


class OutcomeView(APIView):
    """The caller reports how the chosen service did."""

    authentication_classes = HOT_PATH_AUTH
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="route_outcome",
        summary="Report how the chosen service did",
        parameters=[
            OpenApiParameter(
                "request_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The route response's `request_id`.",
            )
        ],
        request=OutcomeDocSerializer,
        responses={
            200: OutcomeResultSerializer,
            **error_responses(
                *JSON_BODY,
                *CLIENT,
                404,
                409,
                descriptions={
                    404: "No routed request with this id (or it is too old).",
                    409: "This service's outcome was already reported.",
                },
            ),
        },
        tags=["route"],
    )
    def post(self, request, request_id: str):
        serializer = OutcomeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = get_router().report_outcome(
            request_id,
            data["service_id"],
            data["success"],
            data.get("latency_ms"),
            data.get("status_code"),
            reporter=request.user,
        )
        return Response(result)


class OverrideListView(APIView):
    """GET: active overrides (any client). POST: pin a strategy (operators)."""

    def get_permissions(self):
        return [IsOperator()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(
        operation_id="strategy_override_list",
        summary="Active strategy overrides",
        responses={200: OverrideListSerializer, **error_responses(*CLIENT)},
        tags=["strategy"],
    )
    def get(self, request):
        overrides = StrategyOverride.objects.active()
        return Response({"results": OverrideSerializer(overrides, many=True).data})

    @extend_schema(
        operation_id="strategy_override_create",
        summary="Pin a strategy, globally or for one request type (operators)",
        request=OverrideCreateDocSerializer,
        responses={201: OverrideSerializer, **error_responses(*JSON_BODY, *OPERATOR)},
        tags=["strategy"],
    )
    def post(self, request):
        serializer = OverrideCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = services.create_override(**serializer.validated_data, user=request.user)
        get_router().mark_stale()
        return Response(OverrideSerializer(override).data, status=status.HTTP_201_CREATED)


class OverrideDetailView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="strategy_override_end",
        summary="End an override now (operators)",
        responses={
            204: OpenApiResponse(description="Ended."),
            **error_responses(
                *OPERATOR, 404, descriptions={404: "No active override with this id."}
            ),
        },
        tags=["strategy"],
    )
    def delete(self, request, override_id: int):
        try:
            services.end_override(override_id)
        except StrategyOverride.DoesNotExist:
            raise APIError(
                "not_found", f"No active override with id {override_id}.", None, 404
            ) from None
        get_router().mark_stale()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MetricsView(APIView):
    """Fleet-wide routing summary: totals, per strategy/service, latency, load balance."""

    @extend_schema(
        operation_id="metrics",
        summary="Routing summary: totals, per strategy and service, latency, balance, learning",
        responses={200: schemas.MetricsSerializer, **error_responses(*CLIENT)},
        tags=["metrics"],
    )
    def get(self, request):
        router = get_router()
        snapshot = router.snapshot()
        live = router.live_states(list(snapshot.service_ids))
        summary = router.metrics.summary(snapshot, live)
        summary["registry_version"] = snapshot.version
        summary["gate_version"] = router.gate_version
        objective = router.engine.config.objective
        summary["objective"] = {
            **objective.as_dict(),
            "series": router.metrics.objective_series(),
        }
        summary["learning"] = router.engine.learner.stats()
        return Response(summary)


class DemoView(APIView):
    """A sample workload through every strategy, compared side by side (nothing recorded)."""

    @extend_schema(
        operation_id="demo_smart_routing",
        summary="A sample workload through every strategy, side by side",
        parameters=[
            OpenApiParameter(
                "complexity",
                str,
                enum=["simple", "medium", "complex"],
                description="Default medium.",
            ),
        ],
        responses={200: schemas.DemoSerializer, **error_responses(400, *CLIENT)},
        tags=["demo"],
    )
    def get(self, request):
        given = request.query_params.getlist("complexity") or ["medium"]
        complexity = given[-1]
        if len(given) > 1 or complexity not in ("simple", "medium", "complex"):
            raise APIError(
                "validation_error",
                "Invalid input: complexity: must be simple, medium or complex.",
                {"complexity": ["Must be one of: simple, medium, complex."]},
            )
        return Response(run_demo(get_router(), complexity))


@csrf_exempt  # no state, no session: another method gets the API's JSON 405, not a CSRF page
def ping(request):
    """A trivial JSON view: the HTTP benchmark's baseline on the same server."""
    if request.method not in ("GET", "HEAD"):
        body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        return JsonResponse(body, status=405, headers={"Allow": "GET, HEAD"})
    return JsonResponse({"ok": True})
