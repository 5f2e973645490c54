"""Calling a chosen service: the rules shared by the proxy endpoint and ``"forward": true``.

- **Address pinning.** A service's host is resolved once (answers cached for
  ``RESOLVE_TTL_S``), every answer is checked against the SSRF rules of
  ``registry.validators``, and the connection goes to the checked IP literal, with the
  original ``Host`` header (and TLS SNI / certificate name): the HTTP client never looks the
  name up again, so a DNS answer that changes between the check and the connection (DNS
  rebinding) cannot redirect it.
- **What counts as a service failure** (fed to the breaker, EWMA and learner): a 5xx, a 429, a
  timeout, a connection error or a connection reset. Any other 4xx is the caller's problem
  and counts as a success of the service. A 429's ``Retry-After`` cools the service down
  (``Router.start_cooldown``): routing leaves it out until then, and it is skipped as a retry
  target, in this worker at once and, with Redis, in every other worker within milliseconds
  (routing/shared_cooldowns.py).
- **When a retry is safe**: the method is idempotent, or the request carries an
  ``Idempotency-Key``, or nothing was sent (connection refused / connect timeout, or the
  address was refused before connecting). The next target is the next selected service,
  then the other eligible candidates of the decision (least utilised first), never one
  already tried, so a single-service selection can still fail over.
- **Retry budget**: retries may add at most ``MOE_RETRY_BUDGET_RATIO`` of the requests of the
  last ``MOE_RETRY_BUDGET_WINDOW_SECONDS`` (plus ``MOE_RETRY_BUDGET_MIN_RETRIES`` per window so a
  quiet router can still retry), per process, so a struggling fleet is not hammered.
- **Deadlines**: each attempt has ``MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS`` to produce response
  headers, the whole call ``MOE_PROXY_DEADLINE_SECONDS`` (or less when the client sends
  ``X-Moe-Deadline-Ms``); the remaining time goes to the service as ``X-Moe-Deadline-Ms``.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

from moe_project.api_errors import APIError
from registry.validators import refuse_forbidden_address
from routing.errors import RoutingError

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
DEADLINE_HEADER = "X-Moe-Deadline-Ms"
BREAKER_REFUSED = "breaker_refused"

# --- resolved-address pinning -------------------------------------------------------------

# host -> (valid until, pinned address or None, refusal reason or None).
RESOLVE_TTL_S = 30.0
_resolved: dict[str, tuple[float, str | None, str | None]] = {}
_resolved_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt connects: ``url`` has the pinned IP literal as its host."""

    url: str
    host_header: str
    sni_hostname: str | None


def pin_is_known(endpoint: str) -> bool:
    """Whether ``endpoint``'s host has a fresh cached answer (pinning it needs no lookup)."""
    host = urlsplit(endpoint).hostname or ""
    with _resolved_lock:
        cached = _resolved.get(host)
    return bool(cached and cached[0] > time.monotonic())


def pin_host(host: str) -> tuple[str | None, str | None]:
    """``(address to connect to, None)`` or ``(None, why the host must not be contacted)``.

    Every answer of one lookup is checked; the first one is the address connected to, for
    every request to ``host`` until the cached answer expires.
    """
    now = time.monotonic()
    with _resolved_lock:
        cached = _resolved.get(host)
    if cached and cached[0] > now:
        return cached[1], cached[2]
    address, reason = None, None
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        for *_, sockaddr in answers:
            refuse_forbidden_address(host, sockaddr[0])
        address = answers[0][4][0] if answers else None
        if address is None:
            reason = f"{host} has no address"
    except ValidationError as exc:
        reason = exc.messages[0]
    except OSError as exc:
        reason = f"{host} does not resolve: {exc}"
    with _resolved_lock:
        _resolved[host] = (now + RESOLVE_TTL_S, address, reason)
    return address, reason


def _forbidden_reason(endpoint: str) -> str | None:
    """Why ``endpoint``'s host must not be contacted now, or None when it is fine."""
    address, reason = pin_host(urlsplit(endpoint).hostname or "")
    return None if address else reason


# Characters a path segment may hold unencoded (RFC 3986 pchar, and "/" between segments).
PATH_SAFE = "/:@!$&'()*+,;=-._~"
# What a request line may carry as it is (visible ASCII, RFC 9112 section 3.2): escapes stay as
# the client wrote them; a "#" (or a "?" in a path) would end the part early.
_WIRE_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
_WIRE_PATH_SAFE = _WIRE_VISIBLE.replace("#", "").replace("?", "")
_WIRE_QUERY_SAFE = _WIRE_VISIBLE.replace("#", "")


def target_for(endpoint: str, path: str = "", query: str = "") -> tuple[Target | None, str | None]:
    """The pinned :class:`Target` for ``endpoint`` + ``path`` (+ ``?query``), or a refusal.

    ``path`` and ``query`` are percent-encoded and go as they are; only what a request line
    cannot carry (a space, a control or non-ASCII character, ``#``) is escaped.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    address, reason = pin_host(host)
    if address is None:
        return None, reason
    literal = (
        f"[{address}]" if ipaddress.ip_address(address.split("%")[0]).version == 6 else address
    )
    port = parts.port
    netloc = f"{literal}:{port}" if port else literal
    # Without a path (``"forward": true``, the proxy's root) the endpoint's own path is the
    # target, as registered; a path is appended to it.
    if path:
        full_path = parts.path.rstrip("/") + "/" + quote(path.lstrip("/"), safe=_WIRE_PATH_SAFE)
    else:
        full_path = parts.path or "/"
    url = f"{parts.scheme}://{netloc}{full_path}"
    if query:
        url += "?" + quote(query, safe=_WIRE_QUERY_SAFE)
    host_header = parts.netloc.rsplit("@", 1)[-1]
    sni = host if parts.scheme == "https" and host != address else None
    return Target(url, host_header, sni), None


# --- failure rules ------------------------------------------------------------------------


def is_failure(status_code: int | None) -> bool:
    """A service failure: no answer, a 5xx or a 429. Other 4xx are the caller's problem."""
    return status_code is None or status_code >= 500 or status_code == 429


def retry_is_safe(method: str, has_idempotency_key: bool, nothing_sent: bool) -> bool:
    return nothing_sent or has_idempotency_key or method.upper() in IDEMPOTENT_METHODS


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" (int() raises) nor "٣" (int() reads 3)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class RetryBudget:
    """Retries <= ratio x requests (+ a floor) over a sliding window; one per process."""

    def __init__(self, ratio: float, window_s: float, min_retries: int, clock=time.monotonic):
        self.ratio, self.window_s, self.min_retries = ratio, window_s, min_retries
        self.clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        edge = now - self.window_s
        for times in (self._requests, self._retries):
            while times and times[0] < edge:
                times.popleft()

    def record_request(self) -> None:
        with self._lock:
            now = self.clock()
            self._trim(now)
            self._requests.append(now)

    def try_spend(self) -> bool:
        """Take one retry if the budget allows it."""
        with self._lock:
            now = self.clock()
            self._trim(now)
            allowed = self.ratio * len(self._requests) + self.min_retries
            if len(self._retries) + 1 > allowed:
                return False
            self._retries.append(now)
            return True

    def stats(self) -> dict:
        with self._lock:
            self._trim(self.clock())
            return {"requests": len(self._requests), "retries": len(self._retries)}


class Cooldowns:
    """Services that answered 429 with ``Retry-After``: skipped as targets until then. One per
    process (:data:`cooldowns`), read by the route decision as a local dict; the cool-downs
    other workers start reach it through Redis (routing/shared_cooldowns.py)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, service_id: str, seconds: float) -> None:
        seconds = min(seconds, settings.MOE_PROXY_MAX_COOLDOWN_SECONDS)
        if seconds > 0:
            with self._lock:
                self._until[service_id] = max(
                    self._until.get(service_id, 0.0), self.clock() + seconds
                )

    def cooling(self, service_id: str) -> bool:
        with self._lock:
            until = self._until.get(service_id)
            if until is None:
                return False
            if until <= self.clock():
                del self._until[service_id]
                return False
            return True

    def mask(self, service_ids) -> list[bool] | None:
        """Which of ``service_ids`` (a snapshot's, in order) are cooling down; None when none
        is (the common case: no lock, one check). Ended cooldowns are dropped."""
        if not self._until:
            return None
        now = self.clock()
        with self._lock:
            for sid in [sid for sid, until in self._until.items() if until <= now]:
                del self._until[sid]
            cooling = set(self._until)
        return [sid in cooling for sid in service_ids] if cooling else None

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


_budget: RetryBudget | None = None
cooldowns = Cooldowns()


def retry_budget() -> RetryBudget:
    global _budget
    if _budget is None:
        _budget = RetryBudget(
            settings.MOE_RETRY_BUDGET_RATIO,
            settings.MOE_RETRY_BUDGET_WINDOW_SECONDS,
            settings.MOE_RETRY_BUDGET_MIN_RETRIES,
        )
    return _budget


def reset_forwarding_state() -> None:
    """Forget the retry budget, cool-downs and resolved addresses (tests, settings changes)."""
    global _budget
    _budget = None
    cooldowns.clear()
    with _resolved_lock:
        _resolved.clear()


def overall_deadline_s(client_deadline_ms: float | None) -> float:
    """Seconds the whole call may take: the setting, or less if the client asks for less."""
    limit = settings.MOE_PROXY_DEADLINE_SECONDS
    if client_deadline_ms is not None:
        limit = min(limit, client_deadline_ms / 1000.0)
    return limit


# --- targets and outcomes -----------------------------------------------------------------


class Attempts:
    """The services one request may try, in order, and what happened on each."""

    def __init__(self, router, routed, snapshot=None) -> None:
        self.router = router
        self.routed = routed
        # The fleet the decision was made on: endpoints come from it without another look.
        self.snapshot = snapshot if snapshot is not None else router.snapshot()
        self.selected = tuple(routed.decision.selected)
        self.tried: list[str] = []
        self.log: list[dict] = []
        self._rest: list[str] | None = None

    def _others(self) -> list[str]:
        """Eligible candidates that were not selected, least utilised first."""
        if self._rest is None:
            snapshot = self.snapshot
            others = [
                sid
                for sid in self.routed.decision.candidates
                if sid not in self.selected and sid in snapshot.index
            ]
            live = self.router.live_states(others) if others else {}

            def cost(sid: str) -> tuple[float, float]:
                spec = snapshot.services[snapshot.index[sid]]
                state = live.get(sid, {})
                if state.get("breaker_state", "closed") == "open":
                    return (2.0, 0.0)
                return (
                    state.get("in_flight", 0) / max(spec.max_capacity, 1),
                    state.get("error_rate", 0.0),
                )

            self._rest = sorted(others, key=cost)
            self._rest = [sid for sid in self._rest if cost(sid)[0] < 2.0]
        return self._rest

    def next_service(self) -> str | None:
        """The next service to try: the selected ones first, then the other candidates;
        never one already tried, nor one cooling down after a 429."""
        cooling = self.router.cooldowns.cooling
        for sid in self.selected:
            if sid not in self.tried and not cooling(sid):
                return sid
        for sid in self._others():
            if sid not in self.tried and not cooling(sid):
                return sid
        return None

    def endpoint(self, service_id: str) -> str | None:
        i = self.snapshot.index.get(service_id)
        return None if i is None else self.snapshot.services[i].endpoint

    def begin(self, service_id: str) -> bool:
        """A lease for a retry target the decision did not select (selected ones hold one).
        False when that service's breaker refused it (shared state: another worker may have
        opened it, or taken its last half-open probe slot): nothing is sent to it then."""
        self.tried.append(service_id)
        if service_id not in self.selected:
            refused = self.router.store.record_routed(self.routed.request_id, [service_id])
            if refused and service_id in refused:
                self.record(service_id, 0.0, None, BREAKER_REFUSED)
                return False
        return True

    def record(self, service_id, latency_ms: float, status_code, error) -> None:
        """Note one attempt in the list a 502 (or ``forwarded.attempts``) shows."""
        self.log.append(
            {
                "service_id": service_id,
                "status_code": status_code,
                "error": error,
                "latency_ms": round(latency_ms, 3),
            }
        )

    def report(self, service_id, success: bool, latency_ms: float, status_code) -> None:
        """Release the attempt's lease and report its outcome."""
        report_outcome(self.router, self.routed, service_id, success, latency_ms, status_code)

    def finish(self, service_id, success: bool, latency_ms: float, status_code, error) -> None:
        self.record(service_id, latency_ms, status_code, error)
        self.report(service_id, success, latency_ms, status_code)


def report_outcome(router, routed, service_id, success, latency_ms, status_code) -> None:
    """Outcome of one service: through the router's report (history, learner, breaker) for a
    selected service; through the live state (lease, EWMA, breaker) for a retry target."""
    if service_id in routed.decision.selected:
        try:
            router.report_outcome(routed.request_id, service_id, success, latency_ms, status_code)
            return
        except RoutingError as exc:  # e.g. the decision expired from the pending buffer
            logger.warning("forwarding: outcome of %s not recorded: %s", service_id, exc)
    router.store.record_outcome(routed.request_id, service_id, success, latency_ms)


# --- "forward": true on /route (synchronous, JSON) ----------------------------------------

_client: httpx.Client | None = None


def keep_no_cookies(client):
    """The pooled clients serve every caller: a cookie one service set for one caller must
    never ride along on another caller's request. Returns ``client``."""
    from http.cookiejar import DefaultCookiePolicy

    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


def _http() -> httpx.Client:
    global _client
    if _client is None:
        _client = keep_no_cookies(
            httpx.Client(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                follow_redirects=False,
                trust_env=False,
            )
        )
    return _client


def forward(
    router,
    routed,
    payload,
    *,
    idempotency_key: str | None = None,
    client_deadline_ms: float | None = None,
) -> dict:
    """POST ``payload`` as JSON to the chosen service under the rules above; the first
    answer that is not a service failure is returned (a 4xx included)."""
    attempts = Attempts(router, routed)
    budget = retry_budget()
    budget.record_request()
    deadline = time.monotonic() + overall_deadline_s(client_deadline_ms)
    service_id = attempts.next_service()
    while service_id is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            attempts.log.append({"service_id": service_id, "error": "deadline_exceeded"})
            break
        outcome = _forward_once(attempts, service_id, payload, idempotency_key, remaining)
        if outcome["success"]:
            return outcome["result"]
        if not retry_is_safe("POST", bool(idempotency_key), outcome["nothing_sent"]):
            break
        service_id = attempts.next_service()
        if service_id is not None and not budget.try_spend():
            attempts.log.append({"service_id": service_id, "error": "retry_budget_exhausted"})
            break
    raise APIError(
        "upstream_failed",
        "No service answered successfully.",
        {"attempts": attempts.log},
        502,
    )


def _forward_once(attempts: Attempts, service_id, payload, idempotency_key, remaining) -> dict:
    if not attempts.begin(service_id):
        return {"success": False, "nothing_sent": True, "result": None}
    started = time.perf_counter()
    endpoint = attempts.endpoint(service_id) or ""
    target, refused = target_for(endpoint)
    response, status_code, error, nothing_sent = None, None, None, False
    if target is None:
        error, nothing_sent = f"refused: {refused}", True
    else:
        timeout = min(settings.MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS, remaining)
        headers = {
            "Host": target.host_header,
            "X-Request-Id": attempts.routed.request_id,
            DEADLINE_HEADER: str(int(remaining * 1000)),
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        try:
            response = _http().post(
                target.url,
                json=payload,
                headers=headers,
                timeout=httpx.Timeout(
                    timeout, connect=min(settings.MOE_PROXY_CONNECT_TIMEOUT_SECONDS, timeout)
                ),
                extensions=extensions,
            )
            status_code = response.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error, nothing_sent = type(exc).__name__, True
        except httpx.HTTPError as exc:
            error = type(exc).__name__
    latency_ms = (time.perf_counter() - started) * 1000
    if status_code == 429 and response is not None:
        pause = retry_after_seconds(response.headers.get("Retry-After"))
        if pause:
            attempts.router.start_cooldown(service_id, pause)
    success = not is_failure(status_code)
    attempts.finish(service_id, success, latency_ms, status_code, error)
    result = None
    if success:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:65536]
        result = {
            "service_id": service_id,
            "status_code": status_code,
            "latency_ms": round(latency_ms, 3),
            "body": body,
            "attempts": attempts.log,
        }
    return {"success": success, "nothing_sent": nothing_sent, "result": result}
