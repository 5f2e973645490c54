"""OpenAPI schemas of the route endpoints, with the limits ``routing.validation`` enforces.

The route endpoints validate by hand (a serializer costs ~100 us per item), so their request
and response bodies are described here as JSON Schema, built from the same constants; nothing
here runs on the hot path (it is read when the schema is generated).
"""

from django.conf import settings

from moe_project.api_docs import raw_schema_serializer
from moe_project.schema_extensions import NO_NUL_PATTERN
from routing.core.strategies import STRATEGY_NAMES
from routing.validation import (
    MAX_CAPABILITIES,
    MAX_CAPABILITY_LENGTH,
    MAX_KEY_LENGTH,
    MAX_TOP_K,
    MAX_TYPE_LENGTH,
)


def _unit(description: str) -> dict:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": description}


def request_data_schema() -> dict:
    """One request's ``data`` object (also each item of a batch)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "What to route. Every key is optional; unknown keys are refused.",
        "properties": {
            "type": {
                "type": "string",
                "maxLength": MAX_TYPE_LENGTH,
                "pattern": NO_NUL_PATTERN,
                "description": "Request type; candidates are services whose type matches.",
            },
            "data": {
                "description": (
                    "The payload (any JSON; forwarded as the body with `forward`). Nested at "
                    f"most MOE_MAX_JSON_DEPTH ({settings.MOE_MAX_JSON_DEPTH}) levels; a string "
                    f"payload at most {settings.MOE_MAX_STRING_LENGTH * 64} characters."
                ),
                "nullable": True,
            },
            "priority": _unit("0..1 (default 0.5)."),
            "complexity": _unit("0..1 (default 0.5)."),
            "anomaly_score": _unit("0..1, from an external detector (tda_aware)."),
            "capabilities": {
                "type": "array",
                "maxItems": MAX_CAPABILITIES,
                "items": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_CAPABILITY_LENGTH,
                    "pattern": NO_NUL_PATTERN,
                },
                "description": "Every one must be offered by the chosen service.",
            },
            "key": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_KEY_LENGTH},
                    {"type": "number"},
                ],
                "description": (
                    "Affinity key (consistent_hash); a number counts as its text, at most "
                    f"{MAX_KEY_LENGTH} characters."
                ),
            },
        },
    }


def _strategy() -> dict:
    return {
        "type": "string",
        "enum": [*STRATEGY_NAMES, None],  # OpenAPI 3.0: a nullable enum lists null
        "nullable": True,
        "x-spec-enum-id": "routing-strategy",  # drf-spectacular: one enum component per name
        "description": "Strategy to use (default MOE_DEFAULT_STRATEGY); an override beats it.",
    }


def _top_k() -> dict:
    return {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_TOP_K,
        "nullable": True,
        "description": "k for top_k and redundancy (default MOE_DEFAULT_TOP_K).",
    }


def route_request_schema() -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["data"],
        "properties": {
            "data": request_data_schema(),
            "routing_strategy": _strategy(),
            "top_k": _top_k(),
            "forward": {
                "type": "boolean",
                "description": "Let the router POST `data.data` to the chosen service.",
            },
        },
    }


def batch_request_schema() -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["requests"],
        "properties": {
            "requests": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.MOE_BATCH_MAX_ITEMS,
                "items": request_data_schema(),
                "description": "At most MOE_BATCH_MAX_ITEMS requests.",
            },
            "routing_strategy": _strategy(),
            "top_k": _top_k(),
        },
    }


ERROR_DETAIL = {
    "type": "object",
    "required": ["code", "message", "fields"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array"}},
    },
}


def route_response_schema() -> dict:
    return {
        "type": "object",
        "required": [
            "request_id",
            "selected_services",
            "routing_strategy",
            "requested_strategy",
            "scores",
            "confidence",
            "reason",
            "latency_ms",
            "propensity",
        ],
        "properties": {
            "request_id": {"type": "string"},
            "selected_services": {"type": "array", "items": {"type": "string"}},
            "routing_strategy": {"type": "string", "description": "The concrete strategy."},
            "requested_strategy": {"type": "string"},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "confidence": {"type": "number"},
            "reason": {"type": "string"},
            "latency_ms": {"type": "number", "description": "Time to decide."},
            "propensity": {
                "type": "number",
                "nullable": True,
                "description": (
                    "Probability with which the first selected service was chosen (logged for "
                    "off-policy evaluation); null when not known."
                ),
            },
            "override_id": {"type": "integer", "description": "The override that applied."},
            "error": {**ERROR_DETAIL, "description": "Only with no eligible service."},
            "forwarded": {
                "type": "object",
                "description": "With `forward`: the chosen service's answer.",
                "properties": {
                    "service_id": {"type": "string"},
                    "status_code": {"type": "integer"},
                    "latency_ms": {"type": "number"},
                    "body": {"nullable": True},
                    "attempts": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    }


def batch_response_schema() -> dict:
    return {
        "type": "object",
        "required": ["results", "count"],
        "properties": {
            "results": {"type": "array", "items": route_response_schema()},
            "count": {"type": "integer", "minimum": 0},
        },
    }


def no_eligible_service_schema() -> dict:
    """The 503: a route response whose ``error`` says ``no_eligible_service``, or the API's
    error body when the worker cannot read the registry yet (``registry_unavailable``)."""
    schema = route_response_schema()
    unavailable = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string", "enum": ["registry_unavailable"]},
                    "message": {"type": "string"},
                    "fields": {"type": "object"},
                },
            }
        },
    }
    return {"anyOf": [{**schema, "required": [*schema["required"], "error"]}, unavailable]}


_COUNT_MAP = {"type": "object", "additionalProperties": {"type": "integer"}}


def metrics_schema() -> dict:
    return {
        "type": "object",
        "required": ["totals", "per_strategy", "per_service", "latency_ms", "load_balance_score"],
        "properties": {
            "totals": {
                "type": "object",
                "description": (
                    "Counts since the counters began, each total with its part: `routed`, "
                    "every routing decision, of which `no_eligible` answered 503 "
                    "no_eligible_service; `outcomes`, every reported outcome, of which "
                    "`failures` failed. (Prometheus' moe_routing_total splits the same "
                    "decisions by outcome=routed|no_eligible.)"
                ),
                "properties": {
                    key: {"type": "integer"}
                    for key in ("routed", "no_eligible", "outcomes", "failures")
                },
            },
            "per_strategy": _COUNT_MAP,
            "per_service": {"type": "object", "additionalProperties": {"type": "object"}},
            "latency_ms": {
                "type": "object",
                "description": "Decision latency percentiles.",
                "properties": {
                    q: {"type": "number", "nullable": True} for q in ("p50", "p90", "p99")
                },
            },
            "load_balance_score": {
                "type": "number",
                "description": "Jain's index of utilisation over healthy services, 0..1.",
            },
            "routing_balance_score": {"type": "number"},
            "registry_version": {"type": "integer"},
            "gate_version": {"type": "integer", "nullable": True},
            "objective": {
                "type": "object",
                "description": (
                    "The objective learned strategies optimise (kind, SLO, description) and "
                    "`series`, its recent values over time."
                ),
                "properties": {
                    "kind": {"type": "string"},
                    "description": {"type": "string"},
                    "series": {"type": "array"},
                },
            },
            "learning": {
                "type": "object",
                "description": "Online learning between retrains: arms, outcomes, config.",
            },
        },
    }


def demo_schema() -> dict:
    return {
        "type": "object",
        "required": ["complexity", "requests", "comparison"],
        "properties": {
            "complexity": {"type": "string", "enum": ["simple", "medium", "complex"]},
            "requests": {"type": "integer"},
            "services": {"type": "integer"},
            "comparison": {
                "type": "array",
                "items": {"type": "object"},
                "description": "One row per strategy: distribution, balance, confidence, time.",
            },
            "most_balanced": {"type": "string", "nullable": True},
        },
    }


RouteRequestSerializer = raw_schema_serializer("RouteRequestSerializer", route_request_schema)
RouteBatchRequestSerializer = raw_schema_serializer(
    "RouteBatchRequestSerializer", batch_request_schema
)
RouteResponseSerializer = raw_schema_serializer("RouteResponseSerializer", route_response_schema)
RouteBatchResponseSerializer = raw_schema_serializer(
    "RouteBatchResponseSerializer", batch_response_schema
)
NoEligibleServiceSerializer = raw_schema_serializer(
    "NoEligibleServiceSerializer", no_eligible_service_schema
)
MetricsSerializer = raw_schema_serializer("MetricsSerializer", metrics_schema)
DemoSerializer = raw_schema_serializer("DemoSerializer", demo_schema)
