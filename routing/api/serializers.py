"""Serializers for the routing API's less frequent endpoints (outcomes, overrides).

The route endpoints validate by hand in :mod:`routing.validation` for speed.
"""

from rest_framework import serializers

from moe_project.api_docs import raw_schema_serializer
from moe_project.schema_extensions import NO_NUL_PATTERN, NON_BLANK_PATTERN
from moe_project.strict_serializers import (
    StrictBoolField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from registry.constants import SERVICE_ID_MAX_LENGTH
from routing.choices import OverrideScope
from routing.core.strategies import STRATEGY_NAMES
from routing.forwarding import is_failure
from routing.models import StrategyOverride
from routing.validation import MAX_TOP_K, MAX_TYPE_LENGTH

MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_LATENCY_MS = 3.6e6  # an hour


class OutcomeSerializer(StrictSerializer):
    service_id = StrictCharField(max_length=SERVICE_ID_MAX_LENGTH)
    success = StrictBoolField()
    latency_ms = StrictFloatField(
        required=False, allow_null=True, min_value=0, max_value=MAX_LATENCY_MS
    )
    status_code = StrictIntegerField(required=False, allow_null=True, min_value=100, max_value=599)

    def validate(self, attrs):
        # A 5xx or a 429 is the service failing (forwarding counts it so); a report that calls
        # it a success would teach the learner the opposite of what happened.
        code = attrs.get("status_code")
        if attrs["success"] and code is not None and is_failure(code):
            raise serializers.ValidationError(
                {"success": [f"Cannot be true with status_code {code} (a service failure)."]}
            )
        return attrs


def outcome_schema() -> dict:
    """``OutcomeSerializer`` as JSON Schema, with its cross-field rule: ``success`` true only
    with no ``status_code`` or one that is not a service failure (5xx, 429). One schema per
    value of ``success``."""

    def variant(success: bool, status_code: dict) -> dict:
        return {
            "type": "object",
            "title": "success" if success else "failure",
            "additionalProperties": False,
            "required": ["service_id", "success"],
            "properties": {
                "service_id": {
                    "type": "string",
                    "maxLength": SERVICE_ID_MAX_LENGTH,
                    "pattern": NON_BLANK_PATTERN,
                },
                "success": {"allOf": [{"type": "boolean", "enum": [success]}]},
                "latency_ms": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_LATENCY_MS,
                    "nullable": True,
                    "description": "How long the service took, in milliseconds.",
                },
                "status_code": {"type": "integer", "nullable": True, **status_code},
            },
        }

    return {
        "required": ["service_id", "success"],
        "oneOf": [
            variant(True, {"minimum": 100, "maximum": 499, "not": {"enum": [429]}}),
            variant(False, {"minimum": 100, "maximum": 599}),
        ],
    }


OutcomeDocSerializer = raw_schema_serializer("OutcomeRequestSerializer", outcome_schema)


class OverrideCreateSerializer(StrictSerializer):
    strategy = StrictChoiceField(choices=STRATEGY_NAMES)
    scope = StrictChoiceField(choices=OverrideScope.choices)
    request_type = StrictCharField(required=False, allow_blank=True, max_length=MAX_TYPE_LENGTH)
    top_k = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TOP_K)
    ttl_seconds = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_TTL_SECONDS
    )
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    def validate(self, attrs):
        request_type = attrs.get("request_type", "")
        if attrs["scope"] == OverrideScope.REQUEST_TYPE and not request_type:
            raise serializers.ValidationError(
                {"request_type": ["Required when scope is request_type."]}
            )
        if attrs["scope"] == OverrideScope.GLOBAL and request_type:
            raise serializers.ValidationError(
                {"request_type": ["Must be empty when scope is global."]}
            )
        return attrs


def override_create_schema() -> dict:
    """``OverrideCreateSerializer`` as JSON Schema, with its cross-field rule.

    ``request_type`` is required (non-blank) with scope ``request_type`` and must be empty or
    absent with scope ``global``: one schema per scope.
    """
    common = {
        "strategy": {
            "type": "string",
            "enum": list(STRATEGY_NAMES),
            "x-spec-enum-id": "override-strategy",  # drf-spectacular: its own enum component
        },
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "nullable": True},
        "ttl_seconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_TTL_SECONDS,
            "nullable": True,
            "description": "Ends by itself after this many seconds (default: never).",
        },
        "reason": {"type": "string", "maxLength": 500, "pattern": NO_NUL_PATTERN},
    }

    def variant(scope: str, request_type: dict, required: list[str]) -> dict:
        return {
            "type": "object",
            "title": f"{scope} override",
            "additionalProperties": False,
            "required": ["strategy", "scope", *required],
            "properties": {
                **common,
                # (inside allOf: drf-spectacular would merge both one-value enums into one)
                "scope": {"allOf": [{"type": "string", "enum": [scope]}]},
                "request_type": request_type,
            },
        }

    # No "type"/"properties" beside oneOf: each variant is complete (and drf-spectacular keeps a
    # component without them).
    return {
        "required": ["strategy", "scope"],
        "oneOf": [
            variant("global", {"type": "string", "maxLength": 0}, []),
            variant(
                "request_type",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_TYPE_LENGTH,
                    "pattern": NON_BLANK_PATTERN,
                },
                ["request_type"],
            ),
        ],
    }


OverrideCreateDocSerializer = raw_schema_serializer(
    "OverrideCreateRequestSerializer", override_create_schema
)


class OutcomeResultSerializer(serializers.Serializer):
    """What ``POST /api/v1/route/<request_id>/outcome`` answers."""

    request_id = serializers.CharField()
    service_id = serializers.CharField()
    recorded = serializers.BooleanField()
    reward = serializers.FloatField(help_text="The outcome's reward under the objective.")
    breaker_state = serializers.CharField(
        allow_null=True, help_text="The service's breaker state after this outcome, if known."
    )


class OverrideSerializer(serializers.ModelSerializer):
    # A string, not the model's choices: the schema's one strategy enum stays StrategyEnum, and
    # a row written by another version may name a strategy this one does not know.
    strategy = serializers.CharField(read_only=True)

    class Meta:
        model = StrategyOverride
        fields = [
            "id",
            "strategy",
            "scope",
            "request_type",
            "top_k",
            "reason",
            "expires_at",
            "ended_at",
            "created_at",
        ]
        read_only_fields = fields


class OverrideListSerializer(serializers.Serializer):
    """What ``GET /api/v1/strategy/override`` answers: the active overrides."""

    results = OverrideSerializer(many=True)
