"""Serializers of the registry API: the register body, a service with its live state, errors.

Input fields are strict about JSON types (DRF's defaults would turn ``123`` into ``"123"`` and
``"5"`` into ``5``): a client sending the wrong type gets a 400 naming the field.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from moe_project.strict_serializers import (
    SingleValueQuerySerializer,
    StrictBoolField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from registry import constants
from registry.api.endpoint_pattern import endpoint_pattern
from registry.choices import ServiceHealth, ServiceStatus, ServiceType
from registry.models import Service
from registry.validators import (
    MIN_WEIGHT,
    validate_capability_name,
    validate_endpoint,
    validate_health_path,
    validate_metadata,
    validate_service_id,
    validate_weight,
)


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """Any JSON on the wire (validators restrict it); documented as an object."""


class ServiceRegisterSerializer(StrictSerializer):
    """Body of ``POST /api/v1/services/register``; unknown fields are refused."""

    service_id = StrictCharField(
        max_length=constants.SERVICE_ID_MAX_LENGTH,
        validators=[validate_service_id],
        help_text="Slug identifying the service; registering an existing id updates it.",
    )
    service_type = StrictChoiceField(choices=ServiceType.choices)
    endpoint = StrictCharField(
        max_length=constants.ENDPOINT_MAX_LENGTH,
        validators=[validate_endpoint],
        help_text="http(s) base URL on a host in the endpoint allow-list.",
    )
    capabilities = serializers.ListField(
        child=StrictCharField(
            max_length=constants.CAPABILITY_NAME_MAX_LENGTH,
            validators=[validate_capability_name],
        ),
        allow_empty=True,
        max_length=constants.MAX_CAPABILITIES_PER_SERVICE,
        help_text="Capability names (slugs); unknown ones are created.",
    )
    max_capacity = StrictIntegerField(min_value=1, max_value=constants.MAX_CAPACITY_LIMIT)
    weight = StrictFloatField(
        required=False,
        validators=[validate_weight],
        help_text=f"Relative share of traffic, from {MIN_WEIGHT:g} to {constants.MAX_WEIGHT:g} "
        "(default 1.0; kept on update when omitted). "
        "The rebalance job moves it toward what capacity and latency call for unless "
        "`weight_pinned` is true.",
    )
    weight_pinned = StrictBoolField(
        required=False,
        help_text="true keeps `weight` as set: the rebalance job leaves it alone (default "
        "false; kept on update when omitted).",
    )
    health_path = StrictCharField(
        required=False,
        max_length=constants.HEALTH_PATH_MAX_LENGTH,
        validators=[validate_health_path],
        help_text='Path probed for health, starting with "/" (default "/health").',
    )
    metadata = JSONObjectField(
        required=False,
        validators=[validate_metadata],
        help_text=f"A JSON object of at most {constants.METADATA_MAX_BYTES} bytes.",
    )

    def validate_empty_values(self, data):
        if data is None:  # a JSON null body
            raise serializers.ValidationError({"body": ["Expected a JSON object."]})
        return super().validate_empty_values(data)

    def validate_capabilities(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class LiveStateSerializer(serializers.Serializer):
    """A service's live state as the router sees it now (not stored in the database)."""

    load = serializers.FloatField(help_text="in_flight / max_capacity")
    in_flight = serializers.IntegerField()
    ewma_latency_ms = serializers.FloatField()
    error_rate = serializers.FloatField()
    breaker_state = serializers.CharField()
    breaker_allows = serializers.BooleanField(
        help_text="whether the breaker lets a request in now (closed, or half-open with a "
        "probe slot free)"
    )
    cooling_down = serializers.BooleanField(
        help_text="answered a forwarded call with 429 and Retry-After: left out of routing "
        "(by this worker) until then"
    )
    anomaly = serializers.FloatField()


IDLE_LIVE_STATE = {
    "in_flight": 0,
    "ewma_latency_ms": 0.0,
    "error_rate": 0.0,
    "breaker_state": "closed",
    "breaker_allows": True,
    "cooling_down": False,
    "anomaly": 0.0,
}


class ServiceSerializer(serializers.ModelSerializer):
    """A registered service; ``live`` comes from the ``live_states`` context entry."""

    capabilities = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    service_type = serializers.ChoiceField(choices=ServiceType.choices, read_only=True)
    status = serializers.ChoiceField(choices=ServiceStatus.choices, read_only=True)
    health = serializers.ChoiceField(choices=ServiceHealth.choices, read_only=True)
    metadata = serializers.DictField(read_only=True)
    live = serializers.SerializerMethodField()

    class Meta:
        model = Service
        fields = [
            "service_id",
            "service_type",
            "endpoint",
            "capabilities",
            "max_capacity",
            "weight",
            "weight_pinned",
            "status",
            "health",
            "health_path",
            "metadata",
            "created_at",
            "updated_at",
            "last_seen",
            "live",
        ]
        read_only_fields = fields

    @staticmethod
    def live_context(services) -> dict:
        """Context with every service's live state, fetched in one call."""
        from routing.runtime import live_states

        return {"live_states": live_states([s.service_id for s in services])}

    @extend_schema_field(LiveStateSerializer)
    def get_live(self, service: Service) -> dict:
        state = {
            **IDLE_LIVE_STATE,
            **self.context.get("live_states", {}).get(service.service_id, {}),
        }
        return {"load": state["in_flight"] / service.max_capacity, **state}


class ServiceListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ServiceSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField()),
        help_text="Offending field name -> messages ('body' for the body as a whole); an "
        "upstream_failed error lists its `attempts` here as objects.",
    )


class ErrorSerializer(serializers.Serializer):
    """The error JSON every API error uses."""

    error = ErrorDetailSerializer()


class ServiceFilterSerializer(SingleValueQuerySerializer):
    """Query parameters of ``GET /api/v1/services``."""

    status = serializers.ChoiceField(choices=ServiceStatus.choices, required=False)
    service_type = serializers.ChoiceField(choices=ServiceType.choices, required=False)
    capability = serializers.CharField(
        required=False, max_length=constants.CAPABILITY_NAME_MAX_LENGTH
    )

    def filter(self, queryset):
        """Apply the validated filters to a Service queryset."""
        data = self.validated_data
        if "status" in data:
            queryset = queryset.filter(status=data["status"])
        if "service_type" in data:
            queryset = queryset.filter(service_type=data["service_type"])
        if "capability" in data:
            queryset = queryset.filter(capabilities__name=data["capability"])
        return queryset


# --- OpenAPI: the register body with the limits the validators enforce -------------------------

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# Starts with "/", not "//"; no space, control character, backslash or "#".
HEALTH_PATH_PATTERN = r"^/([^/\x00-\x20\x7f\\#][^\x00-\x20\x7f\\#]*)?$"


class ServiceRegisterSerializerScheme(OpenApiSerializerExtension):
    """The register body: unknown fields refused, slugs, endpoint hosts, weight range."""

    target_class = ServiceRegisterSerializer
    priority = 1  # before the generic strict-serializer extension

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        props = schema["properties"]
        props["service_id"]["pattern"] = SLUG_PATTERN
        props["capabilities"]["items"]["pattern"] = SLUG_PATTERN
        props["endpoint"]["pattern"] = endpoint_pattern(settings.MOE_ALLOWED_ENDPOINT_HOSTS)
        props["health_path"]["pattern"] = HEALTH_PATH_PATTERN
        weight = props["weight"]
        weight.pop("exclusiveMinimum", None)
        weight.update(minimum=MIN_WEIGHT, maximum=constants.MAX_WEIGHT)
        props["metadata"]["description"] += f" Nested at most {constants.METADATA_MAX_DEPTH} deep."
        return schema
