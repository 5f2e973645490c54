"""Registry API views: register, list, show and remove services.

Views only parse, call ``registry.services`` and render; errors become the shared error JSON
through ``moe_project.api_errors``.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from moe_project.api_docs import CLIENT, JSON_BODY, OPERATOR, error_responses
from moe_project.schema_extensions import NON_BLANK_PATTERN
from registry import constants, services
from registry.api.serializers import (
    ServiceFilterSerializer,
    ServiceListSerializer,
    ServiceRegisterSerializer,
    ServiceSerializer,
)
from registry.choices import ServiceStatus, ServiceType
from registry.models import Service
from registry.permissions import IsOperator, IsOperatorOrReadOnly

_NOT_FOUND = {404: "No service with this id."}


def _services():
    return Service.objects.prefetch_related("capabilities")


def _render(found: list[Service]) -> list[dict]:
    """Serialise services with their live state (one live_states call for all of them)."""
    return ServiceSerializer(found, many=True, context=ServiceSerializer.live_context(found)).data


def _get_service(service_id: str) -> Service:
    try:
        return _services().get(service_id=service_id)
    except Service.DoesNotExist:
        raise exceptions.NotFound(f"Service {service_id!r} is not registered.") from None


class ServiceRegisterView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="services_register",
        summary="Register a service, or update it when the id exists",
        request=ServiceRegisterSerializer,
        responses={
            201: OpenApiResponse(ServiceSerializer, description="Created."),
            200: OpenApiResponse(ServiceSerializer, description="The id existed; updated."),
            **error_responses(*JSON_BODY, *OPERATOR),
        },
        tags=["services"],
    )
    def post(self, request):
        serializer = ServiceRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            service, created = services.register_service(serializer.validated_data)
        except DjangoValidationError as exc:  # the serializer should have caught it; be safe
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
            raise exceptions.ValidationError(detail) from None
        body = _render([_get_service(service.service_id)])[0]
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ServiceListView(APIView):
    permission_classes = [IsOperatorOrReadOnly]

    @extend_schema(
        operation_id="services_list",
        summary="List services with their live state",
        parameters=[
            # An empty value counts as absent (DRF), so "" is listed too.
            OpenApiParameter("status", OpenApiTypes.STR, enum=["", *ServiceStatus.values]),
            OpenApiParameter("service_type", OpenApiTypes.STR, enum=["", *ServiceType.values]),
            OpenApiParameter(
                "capability",
                {
                    "type": "string",
                    "maxLength": constants.CAPABILITY_NAME_MAX_LENGTH,
                    # empty counts as absent; else a non-blank value without NUL
                    "pattern": f"^$|{NON_BLANK_PATTERN}",
                },
                description="Capability name.",
            ),
        ],
        responses={200: ServiceListSerializer, **error_responses(400, *CLIENT)},
        tags=["services"],
    )
    def get(self, request):
        filters = ServiceFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = list(filters.filter(_services()).distinct())
        return Response({"count": len(found), "results": _render(found)})


class ServiceDetailView(APIView):
    permission_classes = [IsOperatorOrReadOnly]

    @extend_schema(
        operation_id="services_retrieve",
        summary="One service with its live state",
        responses={
            200: ServiceSerializer,
            **error_responses(404, *CLIENT, descriptions=_NOT_FOUND),
        },
        tags=["services"],
    )
    def get(self, request, service_id: str):
        return Response(_render([_get_service(service_id)])[0])

    @extend_schema(
        operation_id="services_remove",
        summary="Remove a service",
        responses={
            204: OpenApiResponse(description="Removed."),
            **error_responses(404, *OPERATOR, descriptions=_NOT_FOUND),
        },
        tags=["services"],
    )
    def delete(self, request, service_id: str):
        try:
            services.remove_service(service_id)
        except Service.DoesNotExist:
            raise exceptions.NotFound(f"Service {service_id!r} is not registered.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
