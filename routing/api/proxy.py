"""``ANY /api/v1/proxy/<path>``: route a request, then relay it to the chosen service.

Routing inputs come from ``X-Moe-*`` headers or ``moe_*`` query parameters (validated like
``/route``: a 400 naming the header or parameter). The method, ``<path>``, the rest of the
query, the body and the end-to-end headers go to the service's endpoint + ``<path>``; its
status, headers and body stream back with ``X-Moe-Service`` and ``X-Moe-Request-Id``. The
failure rules (retries, budget, deadlines, 429 cool-downs, address pinning) are those of
:mod:`routing.forwarding`; each attempt's outcome is reported when it ends.

Under ASGI, Django reads a request body into a spooled temporary file (on disk above
``FILE_UPLOAD_MAX_MEMORY_SIZE``) before the view runs, so uploads do not sit in memory and can
be sent again on a retry; responses stream through a small buffer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
import weakref
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

import httpcore
import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost, SynchronousOnlyOperation
from django.db import close_old_connections
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from moe_project.api_errors import APIError, error_body, exception_handler, plain_message
from moe_project.authentication import CachedStatelessJWTAuthentication
from moe_project.throttling import ClientRate, RateGuard
from routing import forwarding
from routing.api.fast import folds_rate_limit
from routing.errors import RoutingError
from routing.forwarding import DEADLINE_HEADER, Attempts, is_failure, retry_is_safe
from routing.runtime import get_router
from routing.validation import (
    FieldErrors,
    ascii_number,
    parse_request_data,
    parse_strategy,
    parse_top_k,
)

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
# Not forwarded in either direction (RFC 9110 section 7.6.1), plus what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The router's own credentials and routing inputs stay here (cookies are filtered).
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "cookie",
    "x-request-id",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-for",
}
# The ASGI server adds its own Date and Server headers: the service's would be duplicates.
RESPONSE_NOT_RELAYED = HOP_BY_HOP | {"content-length", "set-cookie", "date", "server"}

# input name -> (header, query parameter, field of a /route data object or body)
INPUTS = {
    "type": ("X-Moe-Type", "moe_type"),
    "capabilities": ("X-Moe-Capabilities", "moe_capabilities"),
    "key": ("X-Moe-Key", "moe_key"),
    "strategy": ("X-Moe-Strategy", "moe_strategy"),
    "complexity": ("X-Moe-Complexity", "moe_complexity"),
    "priority": ("X-Moe-Priority", "moe_priority"),
    "anomaly_score": ("X-Moe-Anomaly-Score", "moe_anomaly_score"),
    "top_k": ("X-Moe-Top-K", "moe_top_k"),
    "deadline_ms": (DEADLINE_HEADER, "moe_deadline_ms"),
}
QUERY_NAMES = frozenset(query for _, query in INPUTS.values())
PREFIX = "/api/v1/proxy/"
_PREFIX_SEGMENTS = PREFIX.split("/")[:4]  # "", "api", "v1", "proxy"
_SEGMENT_EDGE = re.compile(r"[/\\]")


@dataclass(frozen=True, slots=True)
class ProxyInput:
    request: object
    strategy: str | None
    top_k: int | None
    deadline_ms: float | None
    idempotency_key: str | None


def _fail(name: str, message: str):
    raise FieldErrors({name: [message]})


def _inputs(request) -> tuple[dict[str, str], dict[str, str]]:
    """Raw routing inputs (name -> value) and the header/parameter each came from."""
    values, sources = {}, {}
    for name, (header, query) in INPUTS.items():
        if query in request.GET:
            values[name], sources[name] = request.GET[query], query
        elif header in request.headers:
            values[name], sources[name] = request.headers[header], header
    return values, sources


def _number(raw: str, source: str, low: float, high: float | None) -> float:
    value = ascii_number(raw)
    if not (value >= low and (high is None or value <= high)):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        _fail(source, f"Must be a number {bounds}.")
    return value


def _integer(raw: str) -> int | str:
    """``raw`` as an int when it is ASCII digits, else as it is, for ``parse_top_k`` to refuse
    (``str.isdigit`` is true of other scripts' digits and superscripts, which ``int`` reads or
    raises on)."""
    if raw.isascii() and raw.isdigit():
        try:
            return int(raw)
        except ValueError:  # more digits than int() reads (sys.get_int_max_str_digits)
            pass
    return raw


def check_path(path: str) -> None:
    """Refuse a ``.`` or ``..`` segment: it would take the call out of the service's base path.

    ``path`` is percent-encoded, as it goes to the service; a service may decode it (``%2e``,
    ``%2f``), more than once, split it on ``\\`` or drop a ``;parameter`` from a segment, so
    each of those is undone in turn.
    """
    if "." not in path and "%" not in path:
        return  # the common case, without a regular expression
    text = path
    while True:
        for segment in _SEGMENT_EDGE.split(text):
            if segment.split(";", 1)[0] in (".", ".."):
                _fail("path", "Must not contain a '.' or '..' segment.")
        decoded = unquote(text)
        if decoded == text:
            return
        text = decoded


def upstream_path(request, path: str) -> str:
    """``path`` percent-encoded as the client spelled it, for the service.

    The ASGI server's ``raw_path`` has the client's own escapes: decoding and encoding again
    would turn ``%2F`` into a segment break, an escape that is not UTF-8 (``%FF``) into
    ``%EF%BF%BD`` and ``%c3`` into ``%C3``. Without it (Django's test client), or when it is
    not this request's path (a ``root_path`` in front), ``path`` is encoded again.
    """
    raw = getattr(request, "scope", {}).get("raw_path")
    if raw:
        segments = raw.decode("latin-1").split("/", 4)
        if (
            len(segments) == 5
            and [unquote(segment) for segment in segments[:4]] == _PREFIX_SEGMENTS
            and unquote(segments[4]) == path
        ):
            return segments[4]
    return quote(path, safe=forwarding.PATH_SAFE)


def parse_proxy_inputs(request) -> ProxyInput:
    """Headers / query parameters -> a route request, validated as ``/route`` does."""
    values, sources = _inputs(request)
    data: dict = {}
    if "type" in values:
        data["type"] = values["type"]
    if "capabilities" in values:
        data["capabilities"] = [c.strip() for c in values["capabilities"].split(",") if c.strip()]
    if "key" in values:
        data["key"] = values["key"]
    for name in ("complexity", "priority", "anomaly_score"):
        if name in values:
            data[name] = _number(values[name], sources[name], 0.0, 1.0)
    body: dict = {}
    if "strategy" in values:
        body["routing_strategy"] = values["strategy"]
    if "top_k" in values:
        body["top_k"] = _integer(values["top_k"])
    deadline = None
    if "deadline_ms" in values:
        deadline = _number(values["deadline_ms"], sources["deadline_ms"], 1.0, None)
    field_of = {f"data.{name}": sources[name] for name in values} | {
        "routing_strategy": sources.get("strategy", "X-Moe-Strategy"),
        "top_k": sources.get("top_k", "X-Moe-Top-K"),
    }
    try:
        route_request = parse_request_data(data)
        strategy, top_k = parse_strategy(body), parse_top_k(body)
    except FieldErrors as exc:
        fields = {field_of.get(k, k): v for k, v in exc.fields.items()}
        raise FieldErrors(fields) from None
    return ProxyInput(
        route_request, strategy, top_k, deadline, request.headers.get("Idempotency-Key")
    )


# --- the upstream call ----------------------------------------------------------------------

_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ConnectionPool:
    """Idle keep-alive connections per origin, most recently used first: a request takes one
    (checking it once) or opens a new one. httpcore's own pool rescans every connection on
    every request and response (quadratic in the pool size, a readability syscall each), which
    cost more than the rest of the proxy at a few dozen concurrent requests."""

    def __init__(self, max_idle_per_origin: int = 100, keepalive_expiry: float = 30.0) -> None:
        self.max_idle = max_idle_per_origin
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple, list[httpcore.AsyncHTTPConnection]] = {}

    async def _take(self, request: httpcore.Request) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(_key(request))
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            request.url.origin, keepalive_expiry=self.keepalive_expiry
        )

    async def release(self, key: tuple, connection: httpcore.AsyncHTTPConnection) -> None:
        """After its response was closed: keep the connection if it can serve again."""
        idle = self._idle.setdefault(key, [])
        if connection.is_idle() and len(idle) < self.max_idle:
            idle.append(connection)
        else:
            await connection.aclose()

    async def send(self, request: httpcore.Request) -> Upstream:
        connection = await self._take(request)
        try:
            response = await connection.handle_async_request(request)
        except httpcore.ConnectionNotAvailable:
            # A kept connection closed under us before the request went out: a fresh one.
            await connection.aclose()
            connection = httpcore.AsyncHTTPConnection(
                request.url.origin, keepalive_expiry=self.keepalive_expiry
            )
            try:
                response = await connection.handle_async_request(request)
            except BaseException:
                await connection.aclose()
                raise
        except BaseException:
            await connection.aclose()
            raise
        return Upstream(response, lambda: self.release(_key(request), connection))


def _key(request: httpcore.Request) -> tuple:
    """Connections are shared per pinned address and TLS name (one IP may serve many names)."""
    origin = request.url.origin
    return (origin.scheme, origin.host, origin.port, request.extensions.get("sni_hostname"))


def _pool() -> ConnectionPool:
    """One pool per event loop (its connections belong to that loop). httpcore directly:
    httpx's models and cookie handling would cost ~0.3 ms a request here (and a shared cookie
    jar would carry one caller's cookies to another's request)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = ConnectionPool()
    return pool


class Upstream:
    """A service's response: status, headers (an ``httpx.Headers`` view) and the raw stream."""

    __slots__ = ("status_code", "headers", "_response", "_release")

    def __init__(self, response: httpcore.Response, release) -> None:
        self._response, self._release = response, release
        self.status_code = response.status
        self.headers = httpx.Headers(response.headers)

    def chunks(self):
        return self._response.stream.__aiter__()

    async def aclose(self) -> None:
        """Close the response (once) and give its connection back to the pool."""
        release, self._release = self._release, None
        if release is None:
            return
        try:
            await self._response.aclose()
        finally:
            await release()


# Errors of the transport: a refused or timed-out connection sent nothing.
NOTHING_SENT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout)
TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    OSError,
)


def _service_cookies(header: str) -> str:
    """The caller's cookies minus the router's own (its session and CSRF cookies)."""
    if not header:
        return ""
    own = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    # Django joins repeated Cookie headers with ","; such an edge is not part of a value.
    parts = (part.strip(" ,") for part in header.split(";"))
    kept = [part for part in parts if part and part.split("=", 1)[0].strip() not in own]
    return "; ".join(kept)


def _forwarded_headers(request, request_id: str, remaining_s: float) -> list[tuple[str, str]]:
    connection_named = {
        token.strip().lower()
        for token in request.headers.get("Connection", "").split(",")
        if token.strip()
    }
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name.lower() not in NOT_FORWARDED
        and name.lower() not in connection_named
        and not name.lower().startswith("x-moe-")
    ]
    cookies = _service_cookies(request.headers.get("Cookie", ""))
    if cookies:
        headers.append(("Cookie", cookies))
    client_ip = request.META.get("REMOTE_ADDR", "")
    prior = request.headers.get("X-Forwarded-For")
    headers += [
        ("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip),
        ("X-Forwarded-Proto", request.scheme),
        ("X-Forwarded-Host", request.get_host()),
        ("X-Request-Id", request_id),
        (DEADLINE_HEADER, str(max(1, int(remaining_s * 1000)))),
    ]
    return headers


def _body_source(request):
    """A rewindable file with the request body (so a retry can send it again), or None."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length == "0" and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return None
    stream = getattr(request, "_stream", None)  # under ASGI: Django's spooled body file
    if stream is not None and getattr(stream, "seekable", lambda: False)():
        return stream
    import io

    return io.BytesIO(request.read())  # the test client's stream cannot rewind


async def _body_chunks(source):
    source.seek(0)
    while chunk := source.read(CHUNK):
        yield chunk


@dataclass
class Answer:
    """A response being relayed: headers known, ``head`` buffered, the rest still to stream."""

    service_id: str
    response: Upstream
    head: list[bytes]
    rest: object  # async iterator of the remaining raw chunks, or None when complete
    latency_ms: float


def _prepare(attempts: Attempts, service_id: str | None, path: str, query: str):
    """Take the attempt's lease and find its pinned target (may touch the DNS).
    Returns ``(service_id, target, refusal)``; a None service when none is left to try."""
    if service_id is None:
        return None, None, None
    if not attempts.begin(service_id):
        return service_id, None, forwarding.BREAKER_REFUSED
    target, refused = forwarding.target_for(attempts.endpoint(service_id) or "", path, query)
    return service_id, target, refused


BUDGET_EXHAUSTED = "retry_budget_exhausted"


def _prepare_retry(attempts: Attempts, path: str, query: str, budget):
    """The next target, if there is one and the retry budget allows trying it."""
    service_id = attempts.next_service()
    if service_id is None:
        return None, None, None
    if not budget.try_spend():
        return service_id, None, BUDGET_EXHAUSTED
    return _prepare(attempts, service_id, path, query)


_LOOKUP = object()


def _start_known(router, inp: ProxyInput, path: str, query: str, guard: RateGuard | None):
    """:func:`_start`, leaving a DNS lookup of the first target (``_LOOKUP``) to a thread.
    ``guard``: the rate limit, counted in the route's Redis commit (see ``Router.route``)."""
    routed = router.route(inp.request, inp.strategy, inp.top_k, guard=guard)
    if routed.decision.no_eligible_service or (guard is not None and guard.over):
        return routed, None, None  # over the limit: nothing was recorded, no lease taken
    attempts = Attempts(router, routed, router.snapshot())
    first = attempts.next_service()
    if first is not None and not forwarding.pin_is_known(attempts.endpoint(first) or ""):
        return routed, attempts, _LOOKUP
    return routed, attempts, _prepare(attempts, first, path, query)


def _in_loop_is_safe(router) -> bool:
    """Routing and reporting touch neither the database nor the network: local live state and
    a snapshot that is not due for its registry check (``Router._due``)."""
    due = getattr(router, "_due", None)
    return router.redis_client is None and due is not None and not due(time.monotonic())


async def _run(router, func, *args):
    """``func(*args)`` on the event loop when that is safe (a thread hop costs more than the
    routing itself), else in a worker thread. Code that does reach the database in the loop
    raises before changing anything; it then runs again in a thread, after a registry check
    is forced (the interrupted one marked itself done)."""
    if _in_loop_is_safe(router):
        try:
            return func(*args)
        except SynchronousOnlyOperation:
            router.mark_stale()
    return await _in_thread(func, *args)


def _closing_connections(func, *args):
    try:
        return func(*args)
    finally:
        # Worker threads see no request_finished signal: close what a request would have.
        close_old_connections()


async def _in_thread(func, *args):
    return await sync_to_async(_closing_connections, thread_sensitive=False)(func, *args)


async def _attempt(request, attempts: Attempts, prepared, upstream: dict, remaining):
    """One try of a prepared attempt. Returns ``(Answer | None, failed, nothing_sent)``."""
    service_id, target, refused = prepared
    started = time.perf_counter()
    if refused is forwarding.BREAKER_REFUSED:
        return None, True, True  # not contacted, nothing to report
    if target is None:
        await _finish(attempts, service_id, False, started, None, f"refused: {refused}")
        return None, True, True
    timeout = min(settings.MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS, remaining)
    headers = _forwarded_headers(request, attempts.routed.request_id, remaining)
    headers.append(("Host", target.host_header))
    body = upstream["body"]
    if body is not None:
        headers.append(("Content-Length", str(upstream["size"])))
    extensions = {
        "timeout": {
            "connect": min(settings.MOE_PROXY_CONNECT_TIMEOUT_SECONDS, timeout),
            "read": timeout,
            "write": timeout,
            "pool": timeout,
        }
    }
    if target.sni_hostname:
        extensions["sni_hostname"] = target.sni_hostname
    outgoing = httpcore.Request(
        request.method,
        target.url,
        headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        content=_body_chunks(body) if body is not None else None,
        extensions=extensions,
    )
    response = None
    try:
        response = await asyncio.wait_for(_pool().send(outgoing), timeout)
        head, rest = await _read_head(response)
    except NOTHING_SENT_ERRORS as exc:
        await _finish(attempts, service_id, False, started, None, type(exc).__name__)
        return None, True, True
    except (TimeoutError, *TRANSPORT_ERRORS) as exc:
        if response is not None:
            await response.aclose()
        timed_out = isinstance(exc, TimeoutError | httpcore.TimeoutException)
        status = response.status_code if response is not None else None
        error = "timeout" if timed_out else type(exc).__name__
        await _finish(attempts, service_id, False, started, status, error)
        return None, True, False
    latency_ms = (time.perf_counter() - started) * 1000
    status = response.status_code
    if status == 429:
        pause = forwarding.retry_after_seconds(response.headers.get("Retry-After"))
        if pause:
            attempts.router.start_cooldown(service_id, pause)  # never waits on Redis
    if is_failure(status):
        await response.aclose()
        await _finish(attempts, service_id, False, started, status, None, latency_ms)
        return Answer(service_id, response, head, None, latency_ms), True, False
    if rest is None:
        await _finish(attempts, service_id, True, started, status, None, latency_ms)
    return Answer(service_id, response, head, rest, latency_ms), False, False


def _upstream_query(request) -> str:
    """The query string without the ``moe_*`` routing parameters, the rest as it was sent
    (encoding it again would change the client's escapes: ``%20`` to ``+``, ``%e9`` to
    ``%C3%A9``)."""
    query = request.META.get("QUERY_STRING", "")
    if not any(name in request.GET for name in QUERY_NAMES):
        return query
    # Split as QueryDict does: on "&" only, a name decoded with "+" as a space.
    kept = (
        pair for pair in query.split("&") if unquote_plus(pair.split("=", 1)[0]) not in QUERY_NAMES
    )
    return "&".join(kept)


async def _read_head(response: Upstream):
    """Buffer up to MOE_PROXY_RETRY_BUFFER_BYTES of the body (a failure there is retryable).
    Returns the buffered chunks and an iterator of the rest (None when the body ended)."""
    limit = settings.MOE_PROXY_RETRY_BUFFER_BYTES
    chunks = response.chunks()
    head, size = [], 0
    while size <= limit:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            await response.aclose()
            return head, None
        head.append(chunk)
        size += len(chunk)
    return head, chunks


async def _finish(attempts, service_id, success, started, status, error, latency_ms=None):
    if latency_ms is None:
        latency_ms = (time.perf_counter() - started) * 1000
    attempts.record(service_id, latency_ms, status, error)
    await _run(attempts.router, attempts.report, service_id, success, latency_ms, status)


# --- the view ---------------------------------------------------------------------------------


def _error(code: str, message: str, fields=None, status: int = 400, **headers) -> JsonResponse:
    response = JsonResponse(error_body(code, message, fields), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _authenticate(request):
    """``(user, None)`` for a valid token, else ``(None, the 401 the other endpoints give)``
    (message and challenge)."""
    authenticator = CachedStatelessJWTAuthentication()
    try:
        found = authenticator.authenticate(request)
        message = None if found else "Authentication credentials were not provided."
    except exceptions.AuthenticationFailed as exc:
        message = plain_message(exc.detail)
    if message is None:
        return found[0], None
    challenge = authenticator.authenticate_header(request)
    return None, _error("not_authenticated", message, status=401, WWW_Authenticate=challenge)


def _throttled(rate: ClientRate) -> JsonResponse:
    """The 429 every other endpoint gives (error JSON and ``Retry-After``)."""
    drf = exception_handler(exceptions.Throttled(rate.wait()), {})
    response = JsonResponse(drf.data, status=drf.status_code)
    response["Retry-After"] = drf["Retry-After"]
    return response


async def _unless_over(rate: ClientRate, guard: RateGuard | None, refusal: HttpResponse):
    """``refusal`` (an error found before the route's commit counted the request), or the 429
    if counting it now puts the client over its limit: the other endpoints count a request
    before their view checks it."""
    if guard is not None and guard.count is None and not await rate.allowed_now_async():
        return _throttled(rate)
    return refusal


def _relay(answer: Answer, attempts: Attempts, request_id: str, method: str) -> HttpResponse:
    upstream = answer.response
    if answer.rest is None:
        body = b"".join(answer.head)
        response = HttpResponse(body, status=upstream.status_code)
        length = upstream.headers.get("Content-Length") if method == "HEAD" else str(len(body))
    else:
        response = StreamingHttpResponse(
            _stream_rest(answer, attempts), status=upstream.status_code
        )
        length = upstream.headers.get("Content-Length")
    del response["Content-Type"]  # only the service's own, if it sent one
    for name, value in upstream.headers.items():
        if name.lower() not in RESPONSE_NOT_RELAYED:
            response[name] = value
    for cookie in upstream.headers.get_list("set-cookie"):
        response.cookies.load(cookie)  # one header per cookie on the way out
    if length:
        response["Content-Length"] = length
    response["X-Moe-Service"] = answer.service_id
    response["X-Moe-Request-Id"] = request_id
    if len(attempts.tried) > 1:
        response["X-Moe-Attempts"] = str(len(attempts.tried))
    return response


async def _stream_rest(answer: Answer, attempts: Attempts):
    """The buffered head, then the rest; the outcome is reported when the body ends."""
    success, error = True, None
    try:
        for chunk in answer.head:
            yield chunk
        async for chunk in answer.rest:
            yield chunk
    except TRANSPORT_ERRORS as exc:
        # Headers went out already: the client sees a cut body; the service gets the blame.
        success, error = False, type(exc).__name__
        raise
    finally:
        await answer.response.aclose()
        status = answer.response.status_code
        attempts.record(answer.service_id, answer.latency_ms, status, error)
        # In a thread, this runs to the end even if this task is cancelled (client gone).
        await _run(
            attempts.router, attempts.report, answer.service_id, success, answer.latency_ms, status
        )


@csrf_exempt
async def proxy_view(request, path: str = ""):
    user, refused = _authenticate(request)
    if refused is not None:
        return refused
    try:
        request.get_host()
    except DisallowedHost:
        return _error("invalid_request", "Host not allowed.", {"Host": ["Not allowed."]})
    # The client's rate limit, on the counter of every other endpoint. With Redis state it is
    # counted in the route's commit, as /route's is (routing/api/fast.py): no round trip of
    # its own; otherwise here, on a local counter (or Django's cache).
    rate = ClientRate(user.pk)
    router = get_router()
    guard = rate.guard() if rate.enabled and folds_rate_limit(router) else None
    if guard is None and not await rate.allowed_now_async():
        return _throttled(rate)
    path = upstream_path(request, path)
    try:
        check_path(path)
        inp = parse_proxy_inputs(request)
    except APIError as exc:
        refusal = _error(exc.code, str(exc.detail), exc.fields, exc.status_code)
        return await _unless_over(rate, guard, refusal)
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isascii() and length.isdigit() and int(length) > settings.MOE_PROXY_MAX_BODY_BYTES:
        return await _unless_over(rate, guard, _too_large())
    query = _upstream_query(request)
    try:
        routed, attempts, prepared = await _run(
            router, _start_known, router, inp, path, query, guard
        )
        if prepared is _LOOKUP:
            prepared = await _in_thread(_prepare, attempts, attempts.next_service(), path, query)
    except RoutingError as exc:  # the API's answer to it (400, or 503 registry_unavailable)
        answer = exception_handler(exc, {})
        refusal = JsonResponse(answer.data, status=answer.status_code)
        return await _unless_over(rate, guard, refusal)
    if guard is not None and guard.over:
        return _throttled(rate)
    if routed.decision.no_eligible_service:
        return _error(
            "no_eligible_service",
            routed.decision.reason or "No service can take this request.",
            status=503,
            X_Moe_Request_Id=routed.request_id,
        )
    body = _body_source(request)
    size = None
    if body is not None:
        body.seek(0, 2)  # the whole body is there (spooled): its size goes as Content-Length
        size = body.tell()
    upstream = {"path": path, "query": query, "body": body, "size": size}
    return await _proxy(request, inp, attempts, prepared, upstream)


async def _proxy(request, inp: ProxyInput, attempts: Attempts, prepared, upstream) -> HttpResponse:
    routed = attempts.routed
    budget = forwarding.retry_budget()
    budget.record_request()
    deadline = time.monotonic() + forwarding.overall_deadline_s(inp.deadline_ms)
    last: Answer | None = None
    while prepared[0] is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            attempts.log.append({"service_id": prepared[0], "error": "deadline_exceeded"})
            break
        answer, failed, nothing_sent = await _attempt(
            request, attempts, prepared, upstream, remaining
        )
        if not failed:
            return _relay(answer, attempts, routed.request_id, request.method)
        last = answer or last
        if not retry_is_safe(request.method, bool(inp.idempotency_key), nothing_sent):
            break
        # A retry target may need the live state of others and a DNS lookup: in a thread.
        prepared = await _in_thread(
            _prepare_retry, attempts, upstream["path"], upstream["query"], budget
        )
        if prepared[2] is BUDGET_EXHAUSTED:
            attempts.log.append({"service_id": prepared[0], "error": BUDGET_EXHAUSTED})
            break
    headers = {"X_Moe_Request_Id": routed.request_id}
    if last is not None and last.response.status_code == 429:
        retry_after = last.response.headers.get("Retry-After")
        if retry_after:
            headers["Retry_After"] = retry_after
    return _error(
        "upstream_failed",
        "No service answered successfully.",
        {"attempts": attempts.log},
        status=502,
        **headers,
    )


# --- the ASGI fast path -----------------------------------------------------------------------


async def asgi_proxy(handler, scope, receive, send) -> None:
    """Serve a proxy request straight from the ASGI server, without Django's middleware.

    Django's handler runs sync-only middleware in a per-request thread and the async view
    through ``async_to_sync``: two thread hops, the larger part of the proxy's own latency. The
    view is the same (``proxy_view``); what the middleware added and a proxy needs (host
    validation, JSON errors, a body size limit, cancellation when the client goes away) is
    done here or in the view.
    """
    limit = settings.MOE_PROXY_MAX_BODY_BYTES
    declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
    if declared.isdigit() and int(declared) > limit:
        await handler.send_response(_too_large(), send)
        return
    with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body_file:
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await handler.send_response(_too_large(), send)
                return
            body_file.write(chunk)
            more = message.get("more_body", False)
        body_file.seek(0)
        request, error = handler.create_request(scope, body_file)
        if request is None:
            await handler.send_response(error, send)
            return
        response = await proxy_view(request, scope["path"][len(PREFIX) :])
        response["X-Content-Type-Options"] = "nosniff"
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        sending = asyncio.ensure_future(handler.send_response(response, send))
        watching = asyncio.ensure_future(_client_gone(receive))
        await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
        # The client left mid-response: stop reading the service's body (its outcome is
        # still reported when the stream closes).
        for task in (sending, watching):
            if not task.done():
                task.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)


async def _client_gone(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _too_large() -> JsonResponse:
    return _error(
        "payload_too_large",
        f"Request body is larger than {settings.MOE_PROXY_MAX_BODY_BYTES} bytes.",
        status=413,
    )
