"""``POST /api/v1/route`` and ``/api/v1/route/batch`` answered straight from the ASGI server.

Under ASGI, Django runs each request's sync middleware and view on a thread of its own (thread
start, ~15 thread-local context switches): more CPU than routing itself. This handler serves
the two hot endpoints on the event loop, with the DRF views' contract (``routing/api/views.py``
stays the reference and what the OpenAPI schema documents):

- **Auth**: a valid JWT in ``Authorization: Bearer`` (``CachedStatelessJWTAuthentication``, as
  ``HOT_PATH_AUTH``). Anything else (no header, a session cookie, a bad or expired token), as
  well as another method, a body that is not JSON by its ``Content-Type``, a host outside
  ``ALLOWED_HOSTS``, plain HTTP under ``SECURE_SSL_REDIRECT`` and ``"forward"`` in the body
  goes to Django unchanged, which answers exactly as before.
- **Order and errors as DRF**: rate limit (``moe_project.throttling.ClientRate``, the same
  counter), then body size, JSON, validation (``routing.validation``), then routing; every
  error goes through ``moe_project.api_errors.exception_handler``, so its JSON, status and
  headers (``Retry-After``) are the DRF view's. Security headers are those Django's middleware
  adds for the same settings.
- **Redis**: the rate-limit increment of ``/route`` rides on the route's commit
  (``Router.route(guard=)``): one round trip per routed request. A request that fails
  validation is counted on its own, as DRF counts it before the view runs; so is a batch
  (one round trip more per batch, see ``_answer``).
- **Blocking**: routing is CPU work of well under a millisecond, done inline; a Redis round
  trip (sub-millisecond, 0.25 s socket timeout; an unreachable Redis is retried at most once a
  second) blocks the loop meanwhile. A batch with Redis state awaits its round trips instead
  (its rate-limit count and its commit, through an asyncio client: ``Router.route_batch_async``),
  since its commit waits for Redis for milliseconds, and pauses between pieces of its CPU work
  so the loop reads other requests' data meanwhile; so does a rate-limit count of its own with
  Redis. The registry check (a database query at most every ``MOE_REGISTRY_POLL_SECONDS``)
  runs in a thread.
- Django's request signals and Prometheus' per-view HTTP metrics do not see these requests
  (as for the proxy, ``routing/api/proxy.py``); the router's own metrics count them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from rest_framework import exceptions
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from moe_project.api_errors import error_body, exception_handler
from moe_project.authentication import CachedStatelessJWTAuthentication
from moe_project.json_api import (
    BATCH_ENVELOPE_LEVELS,
    ENVELOPE_LEVELS,
    load_json_body,
    payload_too_large,
)
from moe_project.throttling import ClientRate
from routing.api.views import _requested, route_response
from routing.core.types import round6
from routing.runtime import get_router
from routing.validation import parse_batch_body, parse_route_body

logger = logging.getLogger(__name__)

ROUTE_PATH = "/api/v1/route"
BATCH_PATH = "/api/v1/route/batch"
PATHS = frozenset({ROUTE_PATH, BATCH_PATH})
JSON = b"application/json"


class _Delegate(Exception):
    """Not ours to answer: Django serves the request."""


class _HeaderRequest:
    """What the JWT authentication reads of a request: ``META`` with the auth header."""

    __slots__ = ("META",)

    def __init__(self, meta: dict) -> None:
        self.META = meta


def _auth_header_name() -> bytes:
    # HTTP_AUTHORIZATION -> b"authorization"
    return jwt_settings.AUTH_HEADER_NAME.removeprefix("HTTP_").replace("_", "-").lower().encode()


def _authenticate(headers: dict[bytes, bytes]):
    """The token's user, or None when Django must answer (no / another kind of credentials,
    or a token that does not verify: Django gives the same 401 as before)."""
    raw = headers.get(_auth_header_name())
    if raw is None:
        return None
    request = _HeaderRequest({jwt_settings.AUTH_HEADER_NAME: raw.decode("latin-1")})
    try:
        found = CachedStatelessJWTAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        return None
    return None if found is None else found[0]


def _is_secure(scope, headers: dict[bytes, bytes]) -> bool:
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = headers.get(name)
        if value is not None:
            return value.split(b",")[0].strip().decode("latin-1") == proxy[1]
    return scope.get("scheme") == "https"


def _host_ok(headers: dict[bytes, bytes]) -> bool:
    host = headers.get(b"host")
    if host is None:
        return False
    domain, _ = split_domain_port(host.decode("latin-1"))
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _is_json(headers: dict[bytes, bytes]) -> bool:
    content_type = headers.get(b"content-type", b"")
    return content_type.split(b";", 1)[0].strip().lower() == JSON


def _security_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers Django's SecurityMiddleware and XFrameOptionsMiddleware add to a JSON
    answer, for the current settings."""
    out = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        out.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        out.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        out.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        out.append(
            (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
        )
    out.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
    return out


async def _read_body(receive, limit: int) -> tuple[bytes, bool] | None:
    """The whole body (None if the client left) and whether it exceeded ``limit`` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks), size > limit


def _parse_json(raw: bytes, too_large: bool, envelope: int = ENVELOPE_LEVELS):
    """The body as DRF's request parses it with OrjsonParser (same errors)."""
    if too_large:
        raise payload_too_large()
    if not raw:
        return {}  # DRF does not run the parser on an empty body: the data is empty
    return load_json_body(raw, envelope)


def _dumps(data) -> bytes:
    return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)


class Answer:
    """Status, JSON body and extra headers of one answer."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()):
        self.status, self.body, self.headers = status, body, list(headers)


def _error_answer(exc: Exception) -> Answer:
    response = exception_handler(exc, {})
    if response is None:  # not an API error: Django's handler500 answer
        logger.exception("route handler failed", exc_info=exc)
        body = error_body("server_error", "Internal server error.")
        return Answer(500, _dumps(body))
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower() != "content-type"
    ]
    return Answer(response.status_code, _dumps(response.data), headers)


def _throttled(rate: ClientRate) -> Answer:
    return _error_answer(exceptions.Throttled(rate.wait()))


def _route(path: str, data, router, user, guard):
    """Validate and route; the answer's status and JSON body."""
    client = user.pk
    snapshot = router.current_snapshot()
    if path == ROUTE_PATH:
        inp = parse_route_body(data)
        routed = router.route(
            inp.request, inp.strategy, inp.top_k, client=client, snapshot=snapshot, guard=guard
        )
        if guard is not None and guard.over:
            return None
        body = route_response(routed, _requested(inp.strategy))
        return (503 if routed.decision.no_eligible_service else 200), body
    inp = parse_batch_body(data)
    routed = router.route_batch(
        inp.requests, inp.strategy, inp.top_k, client=client, snapshot=snapshot, guard=guard
    )
    if guard is not None and guard.over:
        return None
    results = batch_results(routed, _requested(inp.strategy))
    return 200, {"results": results, "count": len(results)}


def batch_results(routed, requested: str) -> list[dict]:
    """``[route_response(r, requested) for r in routed]`` as one loop: the same JSON once
    serialised (tuples for lists), with the batch's shared decision time rounded once; an
    item with an override or without a service takes ``route_response`` itself."""
    out = []
    append = out.append
    last_latency, latency_ms = None, None
    for r in routed:
        d = r.decision
        if d.no_eligible_service or r.override_id is not None:
            append(route_response(r, requested))
            continue
        scores = d.scores
        if len(scores) == 1:
            ((sid, score),) = scores.items()
            rounded = {sid: round6(score)}
        else:
            rounded = {k: round6(v) for k, v in scores.items()}
        if d.latency_ms != last_latency:
            last_latency = d.latency_ms
            latency_ms = round(last_latency, 4)
        raw = d.confidence
        confidence = round6(raw)
        propensity = d.propensity
        if propensity is raw:  # the learned strategies' confidence is the propensity
            propensity = confidence
        elif propensity is not None:
            propensity = round6(propensity)
        append(
            {
                "request_id": r.request_id,
                "selected_services": d.selected,
                "routing_strategy": d.strategy,
                "requested_strategy": requested,
                "scores": rounded,
                "confidence": confidence,
                "reason": d.reason,
                "latency_ms": latency_ms,
                "propensity": propensity,
            }
        )
    return out


# While a worker served a request in the last KEEP_FRESH_S, a timer refreshes its view of the
# shared state before it is too old to use, so no request waits for that round trip.
KEEP_FRESH_S = 1.0
_keepers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> task
_last_request = 0.0


def _keep_views_fresh(router) -> None:
    global _last_request
    _last_request = time.monotonic()
    if not hasattr(router.store, "refresh_ahead_async"):  # local state: nothing to refresh
        return
    loop = asyncio.get_running_loop()
    task = _keepers.get(loop)
    if task is None or task.done():
        _keepers[loop] = loop.create_task(_refresh_ahead(router))


async def _refresh_ahead(router) -> None:
    store = router.store
    tick = store.view_max_age_s / 4
    loop = asyncio.get_running_loop()
    while time.monotonic() - _last_request < KEEP_FRESH_S and get_router() is router:
        await asyncio.sleep(tick)
        try:
            await store.refresh_ahead_async(router.current_snapshot())
        except Exception:  # never let the timer die with an error; the request path copes
            if not loop.is_running():  # the loop was closed under the timer (tests' loops)
                return
            logger.exception("view refresh failed")


def _refresh_snapshot(router) -> None:
    """The registry check, with the connection handling Django gives a request: a connection
    that broke (database restarted) or outlived CONN_MAX_AGE is closed before and after."""
    close_old_connections()
    try:
        router.snapshot()
    finally:
        close_old_connections()


def folds_rate_limit(router) -> bool:
    """Whether the route's Redis commit can count the rate limit (see Router.route)."""
    return (
        router.redis_client is not None
        and hasattr(router.store, "queue_guarded")
        and not router.store.degraded
    )


async def _answer(scope, receive, headers, user) -> Answer | None:
    body = await _read_body(receive, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if body is None:
        return None
    raw, too_large = body
    if b'"forward"' in raw:
        raise _Delegate(raw)  # forwarding is the DRF view's (httpx, sync)
    try:
        router = get_router()
        if router.snapshot_due():
            await sync_to_async(_refresh_snapshot)(router)
        _keep_views_fresh(router)
    except Exception as exc:  # a JSON answer, as every other failure here (never uvicorn's)
        return _error_answer(exc)
    rate = ClientRate(user.pk)
    batch = scope["path"] == BATCH_PATH
    # A batch counts its one request on its own: a round trip per thousand decisions is
    # nothing, while guarding a thousand pending-entry writes in one script would hold Redis
    # (single-threaded) for ~10 ms, delaying every other worker's requests.
    folded = rate.enabled and not batch and folds_rate_limit(router)
    if rate.enabled and not folded:
        # With Redis the count is awaited (Redis may be the one that is down: never stall the
        # loop on it); otherwise it is a local counter.
        allowed = await rate.allowed_now_async()
        if not allowed:
            return _throttled(rate)
    # As the batch view: a batch allocates tens of thousands of short-lived, acyclic objects.
    # Batches awaiting Redis overlap on the loop, so the last one out re-enables the collector.
    global _batches_holding_gc
    holds_gc = batch and (_batches_holding_gc > 0 or gc.isenabled())
    if holds_gc:
        _batches_holding_gc += 1
        gc.disable()
    try:
        if batch and router.commits_to_redis():
            # A batch's commit waits ~5-10 ms for Redis (its scripts run a thousand
            # dispatches): awaited on the loop, which routes other batches meanwhile. Only
            # the round trip waits: the CPU work stays on this thread, so concurrent batches
            # do not contend for the GIL as they did in threads.
            answer = await _route_batch_answer(raw, too_large, router, user)
        else:
            guard = rate.guard() if folded else None
            answer = _route_answer(scope["path"], raw, too_large, router, user, guard)
    except Exception as exc:
        # DRF counts a request before its view runs, so one that fails is counted too.
        if folded and not rate.allowed_now():
            return _throttled(rate)
        return _error_answer(exc)
    finally:
        if holds_gc:
            _batches_holding_gc -= 1
            if _batches_holding_gc == 0:
                gc.enable()
    return _throttled(rate) if answer is None else answer


_batches_holding_gc = 0  # batches in progress on this process's loop with the collector off


async def _route_batch_answer(raw: bytes, too_large: bool, router, user) -> Answer:
    """``_route_answer`` for a batch with Redis state, its commit awaited (see
    ``Router.route_batch_async``); the parsed body and the answer's objects are freed on
    return, as there."""
    inp = parse_batch_body(_parse_json(raw, too_large, BATCH_ENVELOPE_LEVELS))
    await asyncio.sleep(0)  # pauses between the pieces of CPU work (see Router._run)
    routed = await router.route_batch_async(
        inp.requests, inp.strategy, inp.top_k, client=user.pk, snapshot=router.current_snapshot()
    )
    await asyncio.sleep(0)
    results = batch_results(routed, _requested(inp.strategy))
    return Answer(200, _dumps({"results": results, "count": len(results)}))


def _route_answer(path: str, raw: bytes, too_large: bool, router, user, guard) -> Answer | None:
    """Parse, route and serialise (None: over the rate limit). The parsed body and the answer's
    objects are freed on return, while a batch still holds the collector off: re-enabled with
    them alive, its next run would walk every one of them."""
    envelope = BATCH_ENVELOPE_LEVELS if path == BATCH_PATH else ENVELOPE_LEVELS
    answer = _route(path, _parse_json(raw, too_large, envelope), router, user, guard)
    if answer is None:
        return None
    status, payload = answer
    return Answer(status, _dumps(payload))


async def asgi_route(django_app, scope, receive, send) -> None:
    """Serve a hot route request, or hand it to Django (see the module docstring)."""
    headers = dict(scope.get("headers") or ())
    user = None
    secure = _is_secure(scope, headers)
    if (
        scope["method"] == "POST"
        and _is_json(headers)
        and _host_ok(headers)
        and (secure or not settings.SECURE_SSL_REDIRECT)
    ):
        user = _authenticate(headers)
    if user is None:
        await django_app(scope, receive, send)
        return
    try:
        answer = await _answer(scope, receive, headers, user)
    except _Delegate as delegated:
        await django_app(scope, _replay(delegated.args[0], receive), send)
        return
    if answer is None:  # the client left
        return
    await send_answer(send, answer, secure)


async def send_answer(send, answer: Answer, secure: bool) -> None:
    """Write ``answer`` with the headers the DRF views' answers carry."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", JSON),
                *answer.headers,
                (b"allow", b"POST, OPTIONS"),  # DRF's, on every answer of the views
                *_security_headers(secure),
                (b"content-length", str(len(answer.body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
