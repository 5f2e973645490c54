"""Serializers for the routing API's less frequent endpoints (outcomes, overrides).

The route endpoints validate by hand in :mod:`routing.validation` for speed.
"""

from rest_framework import serializers

from moe_project.strict_serializers import (
    StrictBoolField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from routing.choices import OverrideScope
from routing.core.strategies import STRATEGY_NAMES
from routing.models import StrategyOverride
from routing.validation import MAX_TOP_K, MAX_TYPE_LENGTH

MAX_TTL_SECONDS = 30 * 24 * 3600


class OutcomeSerializer(StrictSerializer):
    service_id = StrictCharField(max_length=64)
    success = StrictBoolField()
    latency_ms = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=3.6e6)
    status_code = StrictIntegerField(required=False, allow_null=True, min_value=100, max_value=599)


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


class OverrideSerializer(serializers.ModelSerializer):
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
