"""Every API error as ``{"error": {"code", "message", "fields"}}`` with a 4xx status (a 503
when the database is unavailable).

DRF's exceptions, Django's 404 and permission errors and oversized bodies all pass through
:func:`exception_handler`; :func:`error_response` builds the same shape for errors a view
raises itself.
"""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)
# What a 503 (database, registry or live state unavailable) asks the client to wait, in seconds.
RETRY_AFTER_SECONDS = 5

_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class APIError(exceptions.APIException):
    """An error with an explicit code, message and per-field details."""

    def __init__(self, code: str, message: str, fields: dict | None = None, status_code: int = 400):
        self.status_code = status_code
        self.code = code
        self.fields = fields or {}
        super().__init__(detail=message, code=code)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(code: str, message: str, fields: dict | None = None, status_code: int = 400):
    return Response(error_body(code, message, fields), status=status_code)


def _flatten(detail) -> dict:
    """DRF validation detail -> {"field.sub": ["message", ...]} with plain strings."""
    out: dict = {}

    def walk(value, prefix: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
            for i, sub in enumerate(value):
                if sub:
                    walk(sub, f"{prefix}[{i}]")
        elif isinstance(value, list):
            out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk(detail, "")
    return out


def plain_message(detail) -> str:
    """An exception's detail as one plain sentence.

    simplejwt's InvalidToken and AuthenticationFailed carry a dict (``detail``, ``code`` and
    ``messages`` for each token type tried), whose ``str()`` is Python's repr of it.
    """
    if isinstance(detail, dict) and "detail" in detail:
        # "Given token not valid for any token type" says less than why, when every token type
        # tried says the same: "Token is expired", "Token is invalid" (as the token endpoints
        # say it).
        why = {
            str(m.get("message", ""))
            for m in detail.get("messages") or ()
            if isinstance(m, dict) and m.get("message")
        }
        return why.pop() if len(why) == 1 else str(detail["detail"])
    if isinstance(detail, dict | list):
        messages = [message for found in _flatten(detail).values() for message in found]
        return messages[0] if messages else "Error."
    return str(detail)


def _domain_error(exc):
    """Routing's domain errors -> (status, code); None for anything else."""
    from routing import errors

    mapping = (
        (errors.UnknownRequest, 404, "not_found"),
        (errors.RegistryUnavailable, 503, "registry_unavailable"),
        (errors.LiveStateUnavailable, 503, "state_unavailable"),
        (errors.OutcomeAlreadyReported, 409, "outcome_already_reported"),
        (errors.InvalidRoutingInput, 400, "validation_error"),
        (errors.RoutingError, 400, "invalid_request"),
    )
    for kind, status_code, code in mapping:
        if isinstance(exc, kind):
            return status_code, code
    return None


def exception_handler(exc, context):
    domain = _domain_error(exc)
    if domain is not None:
        response = error_response(domain[1], exc.message, exc.fields, domain[0])
        if domain[0] == 503:  # something to wait for: say how long
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, APIError):
        return error_response(exc.code, str(exc.detail), exc.fields, exc.status_code)
    if isinstance(exc, Http404):
        return error_response("not_found", str(exc) or "Not found.", status_code=404)
    if isinstance(exc, PermissionDenied):
        return error_response("permission_denied", str(exc) or "Permission denied.", None, 403)
    if isinstance(exc, RequestDataTooBig):
        return error_response("payload_too_large", "Request body is too large.", None, 413)
    if isinstance(exc, SuspiciousOperation):
        return error_response("invalid_request", str(exc), None, 400)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields), "")
        message = f"Invalid input: {first}: {fields[first][0]}" if first else "Invalid input."
        return error_response("validation_error", message, fields, 400)
    if isinstance(exc, exceptions.ParseError):
        return error_response("invalid_json", str(exc.detail), {"body": [str(exc.detail)]}, 400)
    if isinstance(exc, exceptions.APIException):
        code = _CODES.get(exc.status_code, "error")
        response = error_response(code, plain_message(exc.detail), None, exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away (restarted, unreachable, locked): a 503 to retry, not a 500.
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        response = error_response(
            "database_unavailable", "The database is unavailable; retry shortly.", None, 503
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return None


def json_not_found(request, exception=None):
    """handler404: JSON for API paths, so a client never gets an HTML page."""
    return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)


def json_server_error(request):
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)


def json_bad_request(request, exception=None):
    return JsonResponse(error_body("invalid_request", "Bad request."), status=400)
