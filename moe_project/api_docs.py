"""OpenAPI helpers: the error responses every view documents, in one place.

Every API error has the same body (``ErrorSerializer``: ``{"error": {"code", "message",
"fields"}}``); what differs per endpoint is which status codes it can answer. Views list them
with :func:`error_responses`, using the sets below for the common causes.
"""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from registry.api.serializers import ErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `error.fields` names each offending field (`body` for the whole body).",
    401: "Not authenticated: no token, or a bad or expired one.",
    403: "Authenticated, but not an operator.",
    404: "Not found.",
    409: "Conflict with the current state.",
    413: "Request body larger than MOE_MAX_BODY_BYTES.",
    415: "Request body is not JSON (send `Content-Type: application/json`).",
    429: "Rate limited (per client, shared by every worker); `Retry-After` says when to retry.",
    502: "The upstream service failed.",
    503: "Temporarily unavailable.",
}

# A JSON request body: bad JSON or fields (400), too large (413), not JSON at all (415).
JSON_BODY = (400, 413, 415)
# Any authenticated, rate-limited endpoint.
CLIENT = (401, 429)
# Operators only.
OPERATOR = (401, 403, 429)


def error_responses(*codes: int, descriptions: dict[int, str] | None = None) -> dict:
    """``{status: OpenApiResponse(ErrorSerializer)}`` for ``extend_schema(responses=...)``."""
    descriptions = descriptions or {}
    return {
        code: OpenApiResponse(
            ErrorSerializer, description=descriptions.get(code, ERROR_DESCRIPTIONS[code])
        )
        for code in sorted(set(codes))
    }


class RawSchemaSerializer(serializers.Serializer):
    """Documentation only: a body described by hand as JSON Schema (``raw_schema()``).

    For bodies validated without a serializer (the route endpoints, for speed) or with rules a
    serializer cannot state (one schema per override scope). Subclasses become named OpenAPI
    components, and a request body whose schema has ``required`` keys is marked required.
    """

    @staticmethod
    def raw_schema() -> dict:
        raise NotImplementedError


def raw_schema_serializer(name: str, build) -> type[RawSchemaSerializer]:
    """A ``RawSchemaSerializer`` subclass called ``name`` whose schema ``build()`` returns."""
    return type(name, (RawSchemaSerializer,), {"raw_schema": staticmethod(build)})


class RawSchemaScheme(OpenApiSerializerExtension):
    target_class = RawSchemaSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        return self.target.raw_schema()
