"""Forward a routed request to the chosen service, failing over along the selection.

One pooled ``httpx.Client`` per process. A service that refuses the connection, times out or
answers 5xx counts as a failed outcome (which feeds its EWMA and breaker) and the next selected
service is tried; the first non-5xx answer is returned to the caller.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

from moe_project.api_errors import APIError
from registry.validators import refuse_forbidden_address

_client: httpx.Client | None = None
# host -> (checked until, error message or None). Re-resolved at most every RESOLVE_TTL_S.
RESOLVE_TTL_S = 30.0
_resolved: dict[str, tuple[float, str | None]] = {}
_resolved_lock = threading.Lock()


def _forbidden_reason(endpoint: str) -> str | None:
    """Why ``endpoint``'s host must not be contacted now (it resolves to a metadata or
    link-local address: DNS can change after registration), or None when it is fine."""
    host = urlsplit(endpoint).hostname or ""
    now = time.monotonic()
    with _resolved_lock:
        cached = _resolved.get(host)
    if cached and cached[0] > now:
        return cached[1]
    reason = None
    try:
        for *_, sockaddr in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
            refuse_forbidden_address(host, sockaddr[0])
    except ValidationError as exc:
        reason = exc.messages[0]
    except OSError:
        reason = None  # unresolvable: the connection attempt fails and is reported as such
    with _resolved_lock:
        _resolved[host] = (now + RESOLVE_TTL_S, reason)
    return reason


def _http() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(
            timeout=settings.MOE_FORWARD_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )
    return _client


def forward(router, routed, payload) -> dict:
    """POST ``payload`` to the selected services in order; returns the first usable answer."""
    snapshot = router.snapshot()
    selected = [sid for sid in routed.decision.selected if sid in snapshot.index]
    attempts = []
    for position, service_id in enumerate(selected):
        endpoint = snapshot.services[snapshot.index[service_id]].endpoint
        started = time.perf_counter()
        forbidden = _forbidden_reason(endpoint)
        if forbidden:
            response, status_code, error = None, None, f"refused: {forbidden}"
        else:
            try:
                response = _http().post(endpoint, json=payload)
                status_code, error = response.status_code, None
            except httpx.HTTPError as exc:
                response, status_code, error = None, None, type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000
        success = status_code is not None and status_code < 500
        attempts.append({"service_id": service_id, "status_code": status_code, "error": error})
        last = position == len(selected) - 1
        if success or last:
            # The answer the caller gets is the request's outcome in history.
            router.report_outcome(routed.request_id, service_id, success, latency_ms, status_code)
        else:
            # A failed attempt before fail-over still feeds that service's EWMA and breaker.
            router.store.record_outcome(routed.request_id, service_id, False, latency_ms)
        if success:
            try:
                body = response.json()
            except ValueError:
                body = response.text[:65536]
            return {
                "service_id": service_id,
                "status_code": status_code,
                "latency_ms": round(latency_ms, 3),
                "body": body,
                "attempts": attempts,
            }
    raise APIError(
        "upstream_failed",
        "No selected service answered successfully.",
        {"attempts": attempts},
        502,
    )
